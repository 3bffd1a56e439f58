"""Run a regularizer comparison sweep, resumably, and rebuild its report.

    python scripts/run_comparison.py [--experiment compare_strong|compare_converged]
                                     [--seeds 0 1 2] [--regularizers baseline random_replace ...]
                                     [--work-dir outputs/sweeps/compare_strong]
                                     [--report-dir outputs/reports/compare_strong] [--no-diagnostics]
                                     [train.py overrides ...]

--experiment names conf/experiment/<name>.yaml and the default regularizers
(seq2seq_rdrop.regularizer_names.COMPARISON_SWEEPS):
compare_strong, the 300-step regime (the default), or compare_converged, the converged regime (a validation
split carved from the training file, which pretraining leaves out too, chooses each run's step).
    python scripts/run_comparison.py --experiment compare_converged --horizon-steps 3000 --patience 8
runs the baseline alone, long and stopped by patience on validation, into REPORT_DIR/horizon/: the
learning curve that sets the sweep's trainer.max_steps.

For each seed: one `pretrain.py seed=S` run (conf/pretrain.yaml, 600 steps), shared by every
regularizer of that seed; then, for each regularizer,
    python train.py +experiment=EXPERIMENT regularizer=R seed=S model.pretrained=<pretrain>/checkpoint
(the same number of optimizer steps for all), then the dropout/exposure-bias diagnostics of its final
weights when scripts/diagnose.py is there. Each finished run's small files (metrics.json,
example_scores.json, eval_log.csv, train_log.csv, diagnostics.json; no weights, no data rows) are
copied to REPORT_DIR/runs/R_seedS/, and the report is rebuilt from them as `scripts/compare.py REPORT_DIR`
does.

A (regularizer, seed) whose files are already in REPORT_DIR/runs is skipped; a killed run resumes
from its saved state. Weights stay under WORK_DIR (not committed). Extra arguments go to every
train.py run, e.g. `data.test_file=test.tsv` to score every run on another labelled split.
The driver is seq2seq_rdrop.sweeps (run_comparison); this script is its command line.
"""
from __future__ import annotations

import sys

from seq2seq_rdrop.sweeps import comparison_arguments, run_comparison


def main(argv: list[str] | None = None) -> int:
    args, overrides = comparison_arguments(argv, __doc__)
    return run_comparison(args, overrides)


if __name__ == "__main__":
    sys.exit(main())

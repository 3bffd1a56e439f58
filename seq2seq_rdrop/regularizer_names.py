"""The regularizers by name, for the sweeps, their reports and the benchmarks: which names each sweep runs, the
order a report lists them in, and the reference's label of each. A name is a conf/regularizer/<name>.yaml (what
`regularizer=<name>` selects). Torch-free, so that a report never loads torch."""
from __future__ import annotations

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "regularizer"

# the article's four: scripts/bench_train.py's default, conf/experiment/compare.yaml's sweep
ARTICLE_FOUR = ("baseline", "random_replace", "grad_penalty", "rdrop")

# experiment of scripts/run_comparison.py -> the regularizers it compares by default
COMPARISON_SWEEPS = {
    "compare_strong": ("baseline", "random_replace", "random_replace_vocab", "grad_penalty", "rdrop"),
    "compare_converged": ("baseline", "baseline_dropout03", "random_replace", "grad_penalty", "rdrop",
                          "rdrop_random_replace"),
    "compare_fair": ARTICLE_FOUR,  # the methods of conf/protocol/compare_fair.yaml's tuning grid
}
DEFAULT_COMPARISON = "compare_strong"

# scripts/run_semi_supervised.py's rows, and the row its report's Δ is taken against (R-Drop on the labelled pairs)
SEMI_SUPERVISED_ROWS = ("baseline", "rdrop", "rdrop_semi", "self_train", "rdrop_semi_self_train")
SEMI_SUPERVISED_REFERENCE = "rdrop"

# a report's rows: these first, in this order, then any other name alphabetically
REPORT_ORDER = ("baseline", "baseline_dropout03", "random_replace", "random_replace_vocab", "grad_penalty", "rdrop",
                "rdrop_random_replace")

# the reference's label of each regularizer it published a row for (both random replacements map to its one row)
PUBLISHED_LABELS = {"baseline": "baseline", "random_replace": "random replacement",
                    "random_replace_vocab": "random replacement", "grad_penalty": "gradient penalty",
                    "rdrop": "R-Drop"}


def conf_names() -> list[str]:
    """Every regularizer a run can select: the names of conf/regularizer/*.yaml, sorted."""
    return sorted(p.stem for p in CONF_DIR.glob("*.yaml"))


def order_regularizers(names) -> list[str]:
    """`names` in a report's order: REPORT_ORDER first, then the others alphabetically."""
    names = set(names)
    return [n for n in REPORT_ORDER if n in names] + sorted(names - set(REPORT_ORDER))

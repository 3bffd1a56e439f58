#!/usr/bin/env bash
# The converged comparison (issue 30) on a lent GPU machine, in one call of the device tool, for a session
# that has one (this one had none: the script is prepared, not yet run):
#   run(command="bash docs/experiments/2026-12-03_compare_converged_gpu.sh", carry=[".devpy", ".devdata"],
#       timeout_s=560)
# Nothing depends on it: scripts/run_comparison.py --experiment compare_converged runs the same sweep on CPU.
# What the call carries (both ignored through .git/info/exclude, never committed), as in
# docs/experiments/2026-11-26_semi_supervised_h200.sh:
#   .devpy    the pure-Python packages the image lacks (hydra, omegaconf, antlr4, rouge_score, nltk, jieba)
#   .devdata  a copy of ../shared/data/csl, put back at ../shared/data/csl there (the same data.dir as on CPU)
# Per seed: the pretraining, then every row at once (one driver each, --no-diagnostics); the seeds side by
# side. Every run is the CPU command unchanged (+experiment=compare_converged, same steps); only the device
# differs (trainer.device=auto finds CUDA). Runs still going at the deadline are stopped; the finished runs'
# small files come back in $OUT/converged_gpu.tgz (runs already in REPORT_DIR/runs are skipped, so a second
# call continues). Set ROWS to a subset to fit the budget.
set -u
BUDGET=${BUDGET:-480}
START=$(date +%s)
export PYTHONPATH="$PWD/.devpy:$PWD" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
[ -d ../shared/data/csl ] || { mkdir -p ../shared/data && cp -r .devdata/csl ../shared/data/; }
W=${W:-outputs/sweeps/compare_converged}
R=${R:-outputs/reports/compare_converged_gpu}
ROWS=${ROWS:-"baseline baseline_dropout03 random_replace grad_penalty rdrop rdrop_random_replace"}
LOGS=$R/logs
mkdir -p "$LOGS"
since() { echo "$(( $(date +%s) - START ))s"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  nproc; date -u +%FT%T; } | tee "$LOGS/device.txt"

python3 train.py +experiment=compare_converged regularizer=rdrop_random_replace trainer.device=cuda \
  trainer.max_steps=2 trainer.eval_every=2 trainer.save_every=2 data.max_eval_samples=8 \
  hydra.run.dir=/tmp/smoke > "$LOGS/smoke.log" 2>&1 || { tail -40 "$LOGS/smoke.log"; exit 1; }
echo "smoke passed at $(since)"

driver() { python3 scripts/run_comparison.py --experiment compare_converged --no-diagnostics \
             --work-dir "$W" --report-dir "$R" "$@"; }
seed() {
  driver --seeds "$1" --regularizers baseline > "$LOGS/driver_seed$1_baseline.log" 2>&1 &
  local first=$!
  until [ -f "$W/pretrain_seed$1/metrics.json" ] || ! kill -0 "$first" 2>/dev/null; do sleep 3; done
  for row in $ROWS; do
    [ "$row" = baseline ] || driver --seeds "$1" --regularizers "$row" > "$LOGS/driver_seed$1_$row.log" 2>&1 &
  done
  wait
}
seeds=(); for s in 0 1 2; do seed "$s" & seeds+=($!); done
while [ -n "$(jobs -r)" ] && [ $(( $(date +%s) - START )) -lt "$BUDGET" ]; do sleep 5; done
if [ -n "$(jobs -r)" ]; then
  echo "deadline at $(since): stopping what still runs"
  kill "${seeds[@]}" 2>/dev/null
  pkill -f run_comparison.py; pkill -f train.py; pkill -f pretrain.py; sleep 3
fi
echo "runs ended at $(since)"
find "$W" -maxdepth 2 -type f \( -name '*.json' -o -name '*.csv' -o -name '*.log' -o -name '*.yaml' \) \
  ! -name 'example_scores.json' -exec cp --parents {} "$LOGS" \; 2>/dev/null
tar czf "$OUT/converged_gpu.tgz" "$R"
ls -la "$OUT"; echo "packed at $(since)"

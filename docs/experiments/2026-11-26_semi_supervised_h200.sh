#!/usr/bin/env bash
# The semi-supervised experiment (issue 18) on a lent GPU machine, in one call of the device tool:
#   run(command="bash docs/experiments/2026-11-26_semi_supervised_h200.sh", carry=[".devpy", ".devdata"])
# Nothing in the project depends on it: scripts/run_semi_supervised.py runs the same experiment on CPU.
# What the call carries (both folders ignored through .git/info/exclude, never committed):
#   .devpy    the pure-Python packages the machine's image lacks (hydra, omegaconf, antlr4, rouge_score,
#             nltk), copied from this machine's site-packages; torch and transformers are the image's own
#   .devdata  a copy of ../shared/data/csl, put back at ../shared/data/csl there so that the runs record
#             the same data.dir as on CPU
# Per seed: one restricted pretraining and the baseline row (one driver), then the other four rows at
# once (one driver each); the three seeds side by side. Every run is the CPU command unchanged
# (+experiment=semi_supervised, same steps); only the device differs (trainer.device=auto finds CUDA).
# Runs still going at the deadline are stopped; what finished comes back in $OUT/semi_h200.tgz with a
# per-step cost benchmark on the idle GPU, when time is left for it.
set -u
BUDGET=${BUDGET:-470}                     # seconds for the runs; the call's timeout leaves room to pack
START=$(date +%s)
export PYTHONPATH="$PWD/.devpy:$PWD" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
[ -d ../shared/data/csl ] || { mkdir -p ../shared/data && cp -r .devdata/csl ../shared/data/; }
W=${W:-outputs/sweeps/semi_supervised}
R=${R:-outputs/reports/semi_supervised_h200}
LOGS=$R/logs
mkdir -p "$LOGS"
since() { echo "$(( $(date +%s) - START ))s"; }

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
  nproc; date -u +%FT%T; } | tee "$LOGS/device.txt"

# Smoke: two steps of the costliest row on CUDA, from scratch; stop at once if the code breaks there.
python3 train.py +experiment=semi_supervised regularizer=rdrop_semi_self_train trainer.device="${DEVICE:-cuda}" \
  trainer.max_steps=2 trainer.eval_every=2 trainer.save_every=2 data.max_eval_samples=8 \
  hydra.run.dir=/tmp/smoke > "$LOGS/smoke.log" 2>&1 || { tail -40 "$LOGS/smoke.log"; exit 1; }
echo "smoke passed at $(since)"

driver() { python3 scripts/run_semi_supervised.py --no-diagnostics --work-dir "$W" --report-dir "$R" "$@"; }
seed() {  # the other rows start once the seed's pretraining is there
  driver --seeds "$1" --rows baseline > "$LOGS/driver_seed$1_baseline.log" 2>&1 &
  local first=$!
  until [ -f "$W/pretrain_seed$1/metrics.json" ] || ! kill -0 "$first" 2>/dev/null; do sleep 3; done
  for row in rdrop rdrop_semi self_train rdrop_semi_self_train; do
    driver --seeds "$1" --rows "$row" > "$LOGS/driver_seed$1_$row.log" 2>&1 &
  done
  wait
}
seeds=(); for s in 0 1 2; do seed "$s" & seeds+=($!); done
while [ -n "$(jobs -r)" ] && [ $(( $(date +%s) - START )) -lt "$BUDGET" ]; do sleep 5; done
if [ -n "$(jobs -r)" ]; then
  echo "deadline at $(since): stopping what still runs"
  kill "${seeds[@]}" 2>/dev/null        # first the launchers, so that no row starts after this
  pkill -f run_semi_supervised.py; pkill -f train.py; pkill -f pretrain.py; sleep 3
fi
echo "runs ended at $(since)"

# The per-step cost of each row on the idle GPU, from seed 0's pretraining (as the CPU benchmark).
LEFT=$(( BUDGET + 60 - ($(date +%s) - START) ))
if [ "$LEFT" -gt 30 ] && [ -d "$W/pretrain_seed0/checkpoint" ]; then
  timeout "$LEFT" python3 scripts/bench_train.py --steps 20 --warmup 3 \
    --regularizers baseline,rdrop,rdrop_semi,self_train,rdrop_semi_self_train \
    --out "$R/bench_train.md" --json "$R/bench_train.json" \
    +experiment=semi_supervised model.pretrained="$W/pretrain_seed0/checkpoint" trainer.device="${DEVICE:-cuda}" \
    > "$LOGS/bench_train.log" 2>&1
fi

# Small files only: the report's run files, and each run dir's logs (never weights).
find "$W" -maxdepth 2 -type f \( -name '*.json' -o -name '*.csv' -o -name '*.log' -o -name '*.yaml' \) \
  ! -name 'example_scores.json' -exec cp --parents {} "$LOGS" \; 2>/dev/null
tar czf "$OUT/semi_h200.tgz" "$R"
ls -la "$OUT"; echo "packed at $(since)"
for f in "$R"/runs/*/metrics.json; do echo "$f"; done

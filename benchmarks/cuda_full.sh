#!/usr/bin/env bash
# The full recipe on one GPU, finished and judged, plus the GPU measurements that need an idle GPU (about 9 minutes
# on an H100/H200):
#   1. on the idle GPU: the elastic training overhead (benchmarks/bench_training.py --device cuda) and the latency
#      profile (`nas profile cuda`), each timed with nothing else on the GPU;
#   2. then, side by side: the full GPU recipe trained (or resumed from RUN_DIR's checkpoint) to its end, and its
#      from-scratch twins (largest, smallest, 5 random; benchmarks/bench_accuracy.py --jobs 7), each twin saved to
#      OUT/twins.jsonl as it ends. These small nets leave the GPU mostly idle (their steps are bound by kernel
#      launches), so seven processes share it.
# Usage: benchmarks/cuda_full.sh OUT_DIR RUN_DIR [GPU_PROFILE]
# (env: PYTHON; DEADLINE, seconds from the start by which everything is stopped, default 560)
# Afterwards, on any machine, with the finished run folder back in RUN_DIR (tar xzf OUT_DIR/run.tar.gz):
#   python benchmarks/bench_accuracy.py --run RUN_DIR --twins OUT_DIR/twins.jsonl    (reuses the twins)
set -u
OUT=${1:?usage: benchmarks/cuda_full.sh OUT_DIR RUN_DIR [GPU_PROFILE]}
RUN=${2:?usage: benchmarks/cuda_full.sh OUT_DIR RUN_DIR [GPU_PROFILE]}
GPU=${3:-}
if [ -z "$GPU" ]; then  # the shipped spec profile of this GPU, by its name
  case "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)" in
    *H200*) GPU=nvidia-h200 ;; *H100*) GPU=nvidia-h100 ;; *A100*) GPU=nvidia-a100 ;; *4090*) GPU=nvidia-rtx-4090 ;;
    *T4*) GPU=nvidia-t4 ;; *) echo "name the GPU's profile: benchmarks/cuda_full.sh OUT RUN PROFILE"; exit 2 ;;
  esac
fi
PY=${PYTHON:-python3}
DEADLINE=${DEADLINE:-560}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
left() { echo $((DEADLINE - SECONDS)); }
step() { echo "=== $* ($(date +%T), ${SECONDS} s)" | tee -a "$OUT/checks.log"; }

{ nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; \
  nproc; } > "$OUT/env.txt" 2>&1

step elastic overhead on the idle GPU
timeout 90 $PY benchmarks/bench_training.py --device cuda --batch 1024 --steps 20 --rounds 3 --no-write \
    > "$OUT/bench_training.md" 2>> "$OUT/checks.log"; echo "exit code $?" >> "$OUT/checks.log"

step latency profile on the idle GPU
timeout 150 $PY -m nas profile cuda --space tiny-mbv3 --device "$GPU" --out "$OUT/$GPU.yaml" \
    > "$OUT/profile.log" 2>&1; echo "exit code $?" >> "$OUT/profile.log"
tail -c 1500 "$OUT/profile.log" >> "$OUT/checks.log"

step full recipe to its end, beside its from-scratch twins
RESUME=""; [ -f "$RUN/checkpoint.pt" ] && RESUME="--resume"
( timeout "$(left)" $PY -m nas train experiments/fashion-mnist-full-gpu.yaml --out "$RUN" $RESUME --no-progress \
    > "$OUT/full.log" 2>&1; echo "exit code $?" >> "$OUT/full.log" ) &
FULL=$!
TWIN_THREADS=2 timeout "$(left)" $PY benchmarks/bench_accuracy.py --run "$RUN" --from-checkpoint --device cuda \
    --jobs 7 --twins "$OUT/twins.jsonl" --no-write > "$OUT/twins.log" 2>&1
echo "twins exit code $?" >> "$OUT/checks.log"
wait $FULL
tail -n 6 "$OUT/full.log" >> "$OUT/checks.log"
# One archive (a device lease may bring back only a few files): the run folder without its TensorBoard logs, and
# without the checkpoint once the final weights exist
EXCLUDE="--exclude=tensorboard"; [ -f "$RUN/supernet.pt" ] && EXCLUDE="$EXCLUDE --exclude=checkpoint.pt"
tar czf "$OUT/run.tar.gz" $EXCLUDE -C "$(dirname "$RUN")" "$(basename "$RUN")"
step done

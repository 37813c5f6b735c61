#!/usr/bin/env bash
# The CUDA paths, checked on a machine with one NVIDIA GPU, in one go (about 8 minutes on an H100/H200):
#   1. the full recipe sized for one GPU (experiments/fashion-mnist-full-gpu.yaml), in the background;
#   2. a tiny training run on CUDA through the CLI (bf16 autocast, channels_last), then `nas eval` on it;
#   3. the same run under torchrun with one process (NCCL);
#   4. BN-recalibrated accuracy measuring on CUDA (`nas accuracy fit --device cuda`);
#   5. GPU latency profiling with CUDA events (`nas profile cuda`), into a calibrated device profile;
#   6. the supernet and device-profile tests with CUDA visible (train.device auto picks it).
# Usage: benchmarks/cuda_check.sh OUT_DIR [GPU_PROFILE]
# (env: PYTHON; FULL_LIMIT, seconds for step 1; WORK, the scratch folder, default /tmp/cuda-check)
# Everything lands in OUT_DIR: logs, the measured profile, and the full run's folder as full-run.tar.gz.
set -u
OUT=${1:?usage: benchmarks/cuda_check.sh OUT_DIR [GPU_PROFILE]}
GPU=${2:-nvidia-h200}
PY=${PYTHON:-python3}
W=${WORK:-/tmp/cuda-check}  # a fixed folder, so a later call can resume the full run there
rm -rf "$W"; mkdir -p "$W"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
step() { echo "=== $* ($(date +%T))" | tee -a "$OUT/checks.log"; }

{ nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; \
  nproc; } > "$OUT/env.txt" 2>&1

( timeout "${FULL_LIMIT:-480}" $PY -m nas train experiments/fashion-mnist-full-gpu.yaml --out "$W/full" \
    --no-progress > "$OUT/full.log" 2>&1; echo "exit code $?" >> "$OUT/full.log" ) &
FULL=$!

step tiny train on CUDA
t0=$SECONDS; timeout 180 $PY -m nas train experiments/tiny.yaml --out "$W/tiny" --no-progress \
    >> "$OUT/checks.log" 2>&1; echo "exit code $?, $((SECONDS - t0)) s" >> "$OUT/checks.log"
$PY -c "import json,sys; r=json.load(open(sys.argv[1])); print('world', r['world_size'], 'final', r['final'])" \
    "$W/tiny/run.json" >> "$OUT/checks.log" 2>&1
head -n 4 "$W/tiny/metrics.csv" >> "$OUT/checks.log" 2>&1
$PY -m nas eval "$W/tiny" --arch largest --split test >> "$OUT/checks.log" 2>&1; echo "exit code $?" >> "$OUT/checks.log"

step torchrun, 1 process, NCCL
timeout 180 torchrun --nproc-per-node 1 -m nas train experiments/tiny.yaml --out "$W/tiny-ddp" --no-progress \
    >> "$OUT/checks.log" 2>&1; echo "exit code $?" >> "$OUT/checks.log"
step torchrun, 2 processes on one GPU: a clear error expected
timeout 120 torchrun --nproc-per-node 2 -m nas train experiments/tiny.yaml --out "$W/tiny-ddp2" --no-progress \
    2>&1 | grep -m2 "ConfigError\|CUDA device" >> "$OUT/checks.log"

step accuracy measuring on CUDA
timeout 180 $PY -m nas accuracy fit "$W/tiny" --samples 30 --bn-images 64 --val-images 200 --device cuda \
    2> "$OUT/accuracy.err" | tail -c 1500 >> "$OUT/checks.log"; echo "exit code $?" >> "$OUT/checks.log"

step GPU latency profile
timeout 240 $PY -m nas profile cuda --space tiny-mbv3 --device "$GPU" --out "$OUT/$GPU.yaml" \
    > "$OUT/profile.log" 2>&1; echo "exit code $?" >> "$OUT/profile.log"
tail -c 2000 "$OUT/profile.log" >> "$OUT/checks.log"

step pytest supernet + hw_profiles with CUDA visible
OMP_NUM_THREADS=4 timeout 240 $PY -m pytest -q -p no:cacheprovider tests/supernet tests/hw_profiles \
    > "$OUT/pytest.log" 2>&1; echo "exit code $?" >> "$OUT/pytest.log"
tail -n 25 "$OUT/pytest.log" >> "$OUT/checks.log"

step waiting for the full run
wait $FULL
rm -rf "$W/full/tensorboard"
tar czf "$OUT/full-run.tar.gz" -C "$W" full
tail -n 12 "$OUT/full.log" >> "$OUT/checks.log"
step done

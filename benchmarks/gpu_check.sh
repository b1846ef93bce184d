#!/usr/bin/env bash
# The GPU check (issue 27), prepared for the first machine with CUDA: from the repository root,
#
#     bash benchmarks/gpu_check.sh            # results under ${OUT:-gpu_check}/, a summary in summary.txt
#
# 1. installs the project (pip install -e '.[dev]'; offline machines need the wheels already installed),
# 2. runs every table at `smoke` with `--device cuda` (on the synthetic datasets: no download needed),
# 3. times one epoch of the `paper` recipe of ResNet20 and ResNet56 (CIFAR-10 when $SUITE_DATA holds it, else
#    synthetic CIFAR-10 images) through the harness in fp32 and bf16: images/s,
# 4. runs the peer benchmark (one KD and one baseline epoch, the suite against mdistiller's own pipeline) on the
#    device, and the CPU benchmarks' training-throughput cases on the GPU machine's CPU for comparison.
# Each step has its own time limit and log; one failing step does not stop the others. On a machine without a
# visible CUDA device it says so in one line and exits 2 before doing anything; DEVICE=cpu rehearses every step on
# the CPU instead (slow: it checks the script, not the GPU path).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check}
PY=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
PAPER_DATASET=${PAPER_DATASET:-cifar10}  # a rehearsal on CPU may take synthetic_cifar10 (an epoch in seconds)
export DEVICE PAPER_DATASET

if [ "$DEVICE" = cuda ] && ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: no CUDA device is visible to torch here (torch.cuda.is_available() is False): nothing to check"
    exit 2
fi
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }

BUDGET=${BUDGET:-540}  # seconds for the whole check: a step that would start later is skipped, the summary kept
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, one summary line
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    if (( SECONDS >= BUDGET )); then
        say "$(printf '%-28s skipped: the %ss budget is spent' "$name" "$BUDGET")"
        return
    fi
    (( limit > BUDGET - SECONDS )) && limit=$((BUDGET - SECONDS))
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    say "$(printf '%-28s rc %-3s %4ss  %s' "$name" "$rc" "$((SECONDS - start))" "$(tail -n 1 "$OUT/$name.log")")"
}

say "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$SUMMARY" 2>&1 || true
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
    torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device")' >> "$SUMMARY" 2>&1

step install 300 "$PY" -m pip install -e '.[dev]'

COMMON=(--profile smoke --device "$DEVICE" --quiet --store "$OUT/runs/store.sqlite" --out "$OUT/results")
for table in baselines kd attention encodenet ablation pruning; do
    step "smoke_$table" 240 "$PY" run_all.py --table "$table" --dataset synthetic_cifar10 "${COMMON[@]}"
done
step smoke_compression 240 "$PY" run_all.py --table compression --dataset synthetic_mnist "${COMMON[@]}"
step smoke_edge_mnist 240 "$PY" run_all.py --table edge --dataset synthetic_mnist "${COMMON[@]}"
step smoke_edge_cifar10 240 "$PY" run_all.py --table edge --dataset synthetic_cifar10 "${COMMON[@]}"
step smoke_compare 240 "$PY" run_all.py --table compare --methods baseline,kd,prune --model resnet20 --teacher resnet56 \
    --dataset synthetic_cifar10 "${COMMON[@]}"

step paper_epoch 400 "$PY" - <<'EOF'
"""One epoch of the paper recipe (EncodeNet's baselines: batch 128, SGD lr 0.1) per model and precision."""
import os
import time

import torch

from baselines import create_model
from suite.data import load_dataset
from suite.harness import fit
from suite.profiles import PROFILES

try:
    data, name = load_dataset(os.environ["PAPER_DATASET"]), os.environ["PAPER_DATASET"]
except Exception as exc:  # no copy on this machine: the same shapes, synthetic
    data, name = load_dataset("synthetic_cifar10"), f"synthetic_cifar10 ({os.environ['PAPER_DATASET']}: {exc})"
recipe = PROFILES.get("paper").recipe("cifar", "default").with_(epochs=1, schedule="constant")
device = os.environ.get("DEVICE", "cuda")
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
for model_name in ("resnet20", "resnet56"):
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = create_model(model_name, num_classes=10)
        sync()
        start = time.perf_counter()
        fit(model, data.train, data.info, recipe, device=device, progress=False, precision=precision)
        sync()
        seconds = time.perf_counter() - start
        print(f"{model_name} {precision} on {name}, {device}: {len(data.train)} images in {seconds:.1f} s = "
              f"{len(data.train) / seconds:.0f} img/s (one paper-recipe epoch, batch {recipe.batch_size})")
EOF

step peer_benchmark 300 env SUITE_BENCH_DEVICE="$DEVICE" "$PY" -m pytest benchmarks/test_bench_peer.py --benchmark-only \
    -n 0 -q -p no:cacheprovider   # the suite against mdistiller's own pipeline, both on the device
step cpu_benchmarks 300 "$PY" -m pytest benchmarks/test_bench_fit.py --benchmark-only -n 0 -q -p no:cacheprovider
say "done: logs and tables under $OUT/"

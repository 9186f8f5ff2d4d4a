#!/usr/bin/env bash
# The prepared GPU check (issue 6): nin-cifar10 on CIFAR-10 with CUDA, bf16, channels-last and
# torch.compile, within 8 minutes; prints images/s, epoch time and test accuracy per epoch.
#
# On the device machine (the device tool's `run`), from the repository root, with the data carried:
#   mkdir -p gpu-data && cp -r ../shared/data/cifar10 ../shared/tools/make_cifar_batches.py gpu-data/
#   run: bash benchmarks/gpu_check.sh          carry: ["gpu-data"]        timeout_s: 590
# Here, on the CPU, end to end on a tiny budget:
#   bash benchmarks/gpu_check.sh --dry-run
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
[[ "${1:-}" == "--dry-run" ]] && DRY_RUN=1
PACK_DIR=${NIN_GPU_DATA:-gpu-data}
[[ -f "$PACK_DIR/cifar10/checks.json" ]] || PACK_DIR=../shared/data
CONVERTER=$PACK_DIR/make_cifar_batches.py
[[ -f "$CONVERTER" ]] || CONVERTER=../shared/tools/make_cifar_batches.py
WORK=${NIN_GPU_WORK:-$(mktemp -d)}
OUT=${OUT:-$WORK/out}
mkdir -p "$WORK/data" "$OUT"
start=$(date +%s)

# An environment with the pinned torch: the project's venv where there is one, else a new one.
if [[ -x .venv/bin/nin ]]; then PY=.venv/bin/python; else
  python3 -m venv "$WORK/venv" && "$WORK/venv/bin/pip" install -q -e . && PY=$WORK/venv/bin/python
fi
echo "setup: $(( $(date +%s) - start )) s; $($PY -c 'import torch; print(torch.__version__, "cuda" if torch.cuda.is_available() else "cpu only", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")')"

"$PY" "$CONVERTER" cifar10 --pack "$PACK_DIR/cifar10" --format binary --out "$WORK/data/cifar-10-batches-bin"
echo "data: $(( $(date +%s) - start )) s"

if [[ $DRY_RUN == 1 ]]; then
  # Same command on the CPU, a few hundred images, no compile: checks the script, not the speed.
  # No ZCA: fitting it on 50,000 images takes a minute of 2 cores, and tests/test_cifar_train.py covers it.
  ARGS=(--device cpu --train-subset 1024 --epochs 2 --batch-size 128 --time-budget-minutes 10 --preprocess none)
else
  # Whatever setup took comes out of the 8 minutes; the budget stops training in time to evaluate.
  left=$(( 480 - ($(date +%s) - start) - 45 ))
  ARGS=(--device cuda --precision bf16 --compile --epochs 30 --batch-size 128
        --time-budget-minutes "$(awk "BEGIN {print $left / 60}")")
fi
"$PY" -m nin train --dataset cifar10 --preset nin-cifar10 --recipe fast --augment --data-dir "$WORK/data" \
  --offline --cache-dir "$WORK/cache" --out "$OUT/gpu-check" --no-progress --no-report "${ARGS[@]}"
"$PY" -c "import csv, sys; rows = list(csv.DictReader(open(sys.argv[1])));
print('epoch  img/s  epoch_s  test_acc'); [print(r['epoch'], r['images_per_second'], r['epoch_seconds'], r['test_accuracy']) for r in rows]" \
  "$OUT/gpu-check/metrics.csv"
echo "total: $(( $(date +%s) - start )) s"

#!/usr/bin/env bash
# The prepared GPU check (issue 6): nin-cifar10 on CIFAR-10 with CUDA, bf16, channels-last and
# torch.compile, within 8 minutes; prints images/s, epoch time and test accuracy per epoch.
#
# On the device machine (the device tool's `run`), from the repository root, with the data carried in
# gpu-data/ (ignored by git): gpu-data/cifar10/ (the lossless pack) and gpu-data/make_cifar_batches.py.
#   run: bash benchmarks/gpu_check.sh          carry: ["gpu-data"]        timeout_s: 590
# What one call carries is capped at 64 MiB, the tracked tree included (46 MiB, 40 of it the shipped
# weights), and the CIFAR-10 pack alone is 96 MiB: `python benchmarks/gpu_data_parts.py cifar10` lays it
# out in parts (gpu-data/part-N/cifar10/); carry one per call (paths carried by earlier calls stay on the
# machine while it is held); the script puts them together (benchmarks/gpu_data.sh).
# Here, on the CPU, end to end on a tiny budget:
#   bash benchmarks/gpu_check.sh --dry-run
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
[[ "${1:-}" == "--dry-run" ]] && DRY_RUN=1
WORK=${NIN_GPU_WORK:-$(mktemp -d)}
OUT=${OUT:-$WORK/out}
mkdir -p "$WORK/data" "$OUT"
source benchmarks/gpu_data.sh
start=$(date +%s)

# The first python3 on PATH, with nin from this checkout. On the device machine that is the image's
# python3, which holds torch, torchvision and the rest of nin's needs (not the pinned versions), and nothing
# can be installed there: a new venv's `pip install -e .` would try to download torch and fail.
PY=python3
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
echo "setup: $(( $(date +%s) - start )) s; $($PY -c 'import torch; print(torch.__version__, "cuda" if torch.cuda.is_available() else "cpu only", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")')"

"$PY" "$CONVERTER" cifar10 --pack "$(pack_dir cifar10)" --format binary --out "$WORK/data/cifar-10-batches-bin"
echo "data: $(( $(date +%s) - start )) s"

if [[ $DRY_RUN == 1 ]]; then
  # Same command on the CPU, a few hundred images, no compile: checks the script, not the speed.
  # No ZCA: fitting it on 50,000 images takes a minute of 2 cores, and tests/test_cifar_train.py covers it.
  # The first 1,000 test images: evaluating all 10,000 after each epoch would be most of the dry run's
  # time on the CPU.
  keep_first_test_images "$WORK/data/cifar-10-batches-bin/test_batch.bin" 3073
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

#!/usr/bin/env bash
# Issue 16, item 6: the paper's own budget on a GPU. The paper's recipe (LR divided by 10 at each
# training-accuracy plateau, stop at the third) for the rows cifar10, cifar10-aug and cifar100 (the
# experiments *-paper-recipe), trained at once as three processes on one GPU within one device call.
# Each row stops at its third plateau or at the call's budget, whichever is first; its row says which.
#
# On the device machine (the device tool's `run`), from the repository root. The packs travel in
# parts (`python benchmarks/gpu_data_parts.py cifar10 cifar100` lays them out in gpu-data/, ignored
# by git): carry gpu-data/part-1, gpu-data/part-2, ... one per call, each call within 30 s of the last
# so that the machine stays held, the last one being:
#   run: NIN_GPU_CALL_SECONDS=S bash benchmarks/gpu_paper_rows.sh   carry: ["gpu-data/part-N"]   timeout_s: S
# A pack that did not travel skips its rows (CIFAR-10 alone is about half the calls).
# S is that last call's timeout (default 600, the most one call may run): the rows train until 100 s
# before it. A session's device time (15 minutes in all, the machine's start and every call counted)
# may leave less than 600 s after the data calls: take S from `status`'s budget_left_s then, less a
# minute for handing the files back.
# $OUT gets paper-rows.tar.gz (runs.json, README.md and each run's card and curve, as `nin reproduce
# --results` writes them): unpack it into results/gpu/ to keep the rows beside the CPU ones.
# Here, on the CPU, end to end on a tiny budget:
#   bash benchmarks/gpu_paper_rows.sh --dry-run
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
[[ "${1:-}" == "--dry-run" ]] && DRY_RUN=1
# The rows train until 100 s before the call's timeout (NIN_GPU_CALL_SECONDS; default the most one call
# may run, 600 s, and 400 s for the dry run): those are for the last evaluations, reports and the record.
CALL_SECONDS=${NIN_GPU_CALL_SECONDS:-$(( DRY_RUN == 1 ? 400 : 600 ))}
if [[ ! $CALL_SECONDS =~ ^[0-9]+$ ]]; then
  echo "NIN_GPU_CALL_SECONDS=$CALL_SECONDS: expected the last call's timeout in whole seconds, such as 540" >&2
  exit 2
fi
too_short() {
  echo "NIN_GPU_CALL_SECONDS=$CALL_SECONDS leaves $1 s to train (under a minute) after the data and the last" \
       "100 s; give the call more time or carry less data" >&2
  exit 2
}
(( CALL_SECONDS - 100 >= 60 )) || too_short $(( CALL_SECONDS - 100 ))
ROWS_cifar10="cifar10-paper-recipe cifar10-aug-paper-recipe"
ROWS_cifar100="cifar100-paper-recipe"
WORK=${NIN_GPU_WORK:-$(mktemp -d)}
OUT=${OUT:-$WORK/out}
mkdir -p "$WORK/data" "$WORK/logs" "$OUT"
start=$(date +%s)

# The machine's own python3 with nin from this checkout (nothing can be installed there; gpu_check.sh).
PY=python3
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

source benchmarks/gpu_data.sh
declare -A OUTPUT=([cifar10]=cifar-10-batches-bin [cifar100]=cifar-100-binary)
declare -A RECORD=([cifar10]=3073 [cifar100]=3074)
declare -A TEST_FILE=([cifar10]=test_batch.bin [cifar100]=test.bin)
rows=()
for pack in cifar10 cifar100; do
  folder=$(pack_dir "$pack")
  if [[ ! -f "$folder/checks.json" ]]; then
    echo "$pack: no pack carried; skipping its rows"
    continue
  fi
  "$PY" "$CONVERTER" "$pack" --pack "$folder" --format binary --out "$WORK/data/${OUTPUT[$pack]}"
  if [[ $DRY_RUN == 1 ]]; then   # as gpu_check.sh's dry run
    keep_first_test_images "$WORK/data/${OUTPUT[$pack]}/${TEST_FILE[$pack]}" "${RECORD[$pack]}"
  fi
  rows_var=ROWS_$pack
  rows+=(${!rows_var})
done
[[ ${#rows[@]} -gt 0 ]] || { echo "no pack to train on: carry gpu-data/part-N (see this script's header)" >&2; exit 2; }
echo "data: $(( $(date +%s) - start )) s; rows: ${rows[*]}"

# The rows' experiment files alone, so that the record's table holds these rows only; the dry run
# trains the same experiments on a few hundred images without ZCA (tests/test_cifar_train.py covers it).
"$PY" - "$WORK/experiments" "$DRY_RUN" "${rows[@]}" <<'EOF'
import json, sys
from pathlib import Path
from nin.reproduce.experiments import default_experiments_dir
out, dry_run, rows = Path(sys.argv[1]), sys.argv[2] == "1", sys.argv[3:]
out.mkdir(parents=True, exist_ok=True)
for name in rows:
    experiment = json.loads((default_experiments_dir() / f"{name}.json").read_text())
    if dry_run:
        experiment["train"].update(train_subset=256, epochs=1, preprocess="none")
    (out / f"{name}.json").write_text(json.dumps(experiment, indent=2))
EOF
[[ $DRY_RUN == 1 ]] && export OMP_NUM_THREADS=1   # three processes on the CPU's cores
left=$(( CALL_SECONDS - 100 - ($(date +%s) - start) ))
(( left >= 60 )) || too_short "$left"
# Each row's budget counts from its own process's start (the card's wall time).
budget=$(awk "BEGIN {printf \"%.2f\", $left / 60}")

# One process per row, all at once: a batch of 128 images of 32 x 32 is a small job for one GPU, so
# the rows are expected to gain from sharing it rather than queueing (not measured: no GPU yet).
# Each writes its own scratch results; the record below reuses the finished runs.
pids=()
for row in "${rows[@]}"; do
  "$PY" -m nin reproduce "$row" --budget-minutes "$budget" --data-dir "$WORK/data" --runs-dir "$WORK/runs" \
    --results "$WORK/scratch/$row" --experiments-dir "$WORK/experiments" > "$WORK/logs/$row.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "${rows[$i]}: failed; the end of its log:" >&2
    tail -n 20 "$WORK/logs/${rows[$i]}.log" >&2
    failed=1
  fi
done
[[ $failed == 0 ]] || exit 1
echo "train: $(( $(date +%s) - start )) s"

# One record of all the rows (each finished run is reused, not trained again).
"$PY" -m nin reproduce "${rows[@]}" --budget-minutes "$budget" --data-dir "$WORK/data" --runs-dir "$WORK/runs" \
  --results "$WORK/paper-rows" --experiments-dir "$WORK/experiments"
tar -czf "$OUT/paper-rows.tar.gz" -C "$WORK/paper-rows" .
echo "total: $(( $(date +%s) - start )) s"

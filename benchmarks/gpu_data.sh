# Sourced by the device scripts (gpu_check.sh, gpu_paper_rows.sh), from the repository root, after
# WORK is set: where each CIFAR pack and the converter are, and the dry runs' cut of the test set.
# A pack is taken from the parts carried in gpu-data/part-N/<pack>/ (benchmarks/gpu_data_parts.py),
# put together in $WORK/packs/; else from $NIN_GPU_DATA/<pack>/ (default gpu-data/, put together by
# hand); else, on the CPU, from ../shared/data/.

GPU_DATA=${NIN_GPU_DATA:-gpu-data}
CONVERTER=$(ls gpu-data/part-*/make_cifar_batches.py "$GPU_DATA/make_cifar_batches.py" 2>/dev/null | head -1 || true)
[[ -n "$CONVERTER" ]] || CONVERTER=../shared/tools/make_cifar_batches.py

pack_dir() {   # the folder that holds pack $1 (cifar10, cifar100)
  if compgen -G "gpu-data/part-*/$1" >/dev/null; then
    mkdir -p "$WORK/packs/$1" && cp gpu-data/part-*/"$1"/* "$WORK/packs/$1/"
    echo "$WORK/packs/$1"
  elif [[ -f "$GPU_DATA/$1/checks.json" ]]; then
    echo "$GPU_DATA/$1"
  else
    echo "../shared/data/$1"
  fi
}

keep_first_test_images() {   # file, record bytes: the first 1,000 test images, whole records
  head -c $(( 1000 * $2 )) "$1" > "$1.part" && mv "$1.part" "$1"
}

"""Peak memory and time of preparing SVHN at full size (train + extra with LCN), on synthetic data.

    python benchmarks/svhn_memory.py [--work DIR]

The real SVHN is not available offline here, so this writes .mat files of the official sizes
(73,257 train, 531,131 extra, 26,032 test images; about 1.9 GB) with random pixels, then runs
the same `load_dataset("svhn", val_split="paper")` that `nin train` runs, and reports the peak
resident memory of that step. Needs about 6 GB of free disk in --work.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.io

from nin.data.datasets import load_dataset
from nin.provenance import peak_memory_bytes

SIZES = {"train": 73_257, "extra": 531_131, "test": 26_032}


def write_synthetic(folder: Path) -> None:
    rng = np.random.default_rng(0)
    for split, n in SIZES.items():
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).astype(np.uint8)[:, None]
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
        del x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--load", type=Path, help=argparse.SUPPRESS)    # the child processes' jobs
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write_synthetic(args.write)
        return
    if args.load:
        start = time.perf_counter()
        data = load_dataset("svhn", args.load, offline=True, val_split="paper", cache_dir=args.load / "cache")
        seconds = time.perf_counter() - start
        readers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
        print(f"train {len(data.train):,}, val {len(data.val):,}, test {len(data.test):,} images, "
              f"{data.train.images.dtype}; load + split + LCN + cache: {seconds:.0f} s")
        print(f"peak RSS: the loading process {peak_memory_bytes() / 1024 ** 3:.2f} GB; its .mat readers "
              f"(child processes) at most {readers:.2f} GB "
              "(an upper bound: it includes the loader's size when each started)")
        return
    work = Path(tempfile.mkdtemp(dir=args.work))
    try:
        # Both jobs in fresh processes: the writer's memory must not count as the loader's.
        subprocess.run([sys.executable, __file__, "--write", str(work)], check=True)
        print(f"wrote synthetic SVHN to {work}")
        subprocess.run([sys.executable, __file__, "--load", str(work)], check=True)
        print("(one float16 copy of train + extra is 3.7 GB; float32 would be 7.4 GB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

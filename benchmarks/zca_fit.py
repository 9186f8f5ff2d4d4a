"""Time the paper's CIFAR preprocessing on 50,000 x 3,072 images: GCN, ZCA fit, ZCA apply.

    python benchmarks/zca_fit.py [--data-dir data]    # CIFAR-10 binary layout there, else random data

Target (issue 3): ZCA fit under 30 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import torch

from nin.data import cifar
from nin.data.registry import dataset_info
from nin.data.preprocess import apply_zca, fit_zca, global_contrast_normalize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args()
    folder = args.data_dir / "cifar-10-batches-bin"
    if folder.is_dir():
        images, _ = cifar.read(dataset_info("cifar10"), folder, "train")
        source = f"CIFAR-10 binary layout in {folder}"
    else:
        images = np.random.default_rng(0).integers(0, 256, (50_000, 3, 32, 32), dtype=np.uint8)
        source = "random uint8 images (no CIFAR-10 found)"
    x = images.reshape(len(images), -1)
    print(f"data: {source}, {x.shape[0]:,} x {x.shape[1]:,}; torch threads: {torch.get_num_threads()}")
    t0 = time.perf_counter()
    gcn = global_contrast_normalize(x)
    t1 = time.perf_counter()
    params = fit_zca(gcn)
    t2 = time.perf_counter()
    apply_zca(gcn, params)
    t3 = time.perf_counter()
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"GCN        {t1 - t0:6.1f} s")
    print(f"ZCA fit    {t2 - t1:6.1f} s   (target < 30 s)")
    print(f"ZCA apply  {t3 - t2:6.1f} s")
    print(f"peak RSS   {peak_gb:6.2f} GB")


if __name__ == "__main__":
    main()

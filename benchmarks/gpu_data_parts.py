"""Lay out the lossless CIFAR packs for the device machine: gpu-data/part-N/<pack>/, each part small
enough to travel in one device call beside the tracked tree (a call carries at most 64 MiB in all).

    python benchmarks/gpu_data_parts.py cifar10 cifar100

Then carry gpu-data/part-1, gpu-data/part-2, ... one per call (part-1 also holds the converter); the
device scripts put the packs together again (benchmarks/gpu_paper_rows.sh, gpu_check.sh's header).
"""

import argparse
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CALL_LIMIT = 64 * 2**20
MARGIN = 2 * 2**20   # the untracked files that are not ignored, and growth of the tree between calls


def tracked_bytes() -> int:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return sum((REPO / name).stat().st_size for name in files.decode().split("\0") if name)


def lay_out(packs: list[str], out: Path, part_bytes: int) -> list[Path]:
    """Copy each pack's files into parts of at most part_bytes; returns the part folders."""
    shutil.rmtree(out, ignore_errors=True)
    parts, size = [], part_bytes
    for pack in packs:
        for path in sorted((SHARED / "data" / pack).iterdir()):
            if size + path.stat().st_size > part_bytes:
                parts.append(out / f"part-{len(parts) + 1}")
                size = 0
            (parts[-1] / pack).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, parts[-1] / pack / path.name)
            size += path.stat().st_size
    shutil.copy2(SHARED / "tools" / "make_cifar_batches.py", parts[0] / "make_cifar_batches.py")
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("packs", nargs="+", choices=["cifar10", "cifar100"])
    parser.add_argument("--out", type=Path, default=REPO / "gpu-data")
    args = parser.parse_args()
    part_bytes = CALL_LIMIT - tracked_bytes() - MARGIN
    parts = lay_out(args.packs, args.out, part_bytes)
    print(f"{len(parts)} parts of at most {part_bytes / 2**20:.1f} MiB in {args.out}: carry one per call, "
          f"then run the script with all of them on the machine")


if __name__ == "__main__":
    main()

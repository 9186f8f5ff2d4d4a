"""MNIST and Fashion-MNIST: finding, downloading and reading their IDX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nin.data.idx import read_idx
from nin.errors import NinError

IDX_FILES = {  # split -> (images, labels), without .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_TORCHVISION_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
# Debian's package dataset-fashion-mnist installs the original files here.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_folders(name: str, data_dir: Path) -> list[Path]:
    folders = [data_dir, data_dir / name, data_dir / _TORCHVISION_FOLDER[name] / "raw"]
    if name == "fashion-mnist":
        folders.append(DEBIAN_FASHION_MNIST)
    return folders


def _all_files(folder: Path) -> dict[str, Path] | None:
    stems = [s for pair in IDX_FILES.values() for s in pair]
    found = {s: _find_file(folder, s) for s in stems}
    if all(found.values()):
        return found
    present = [s for s, p in found.items() if p]
    if present:
        missing = [f"{s}[.gz]" for s, p in found.items() if not p]
        raise NinError(f"{folder}: has {', '.join(present)} but is missing {', '.join(missing)}; "
                       "put all four IDX files there, or delete the folder to download them again")
    return None


def _download_idx(name: str, data_dir: Path) -> Path:
    """torchvision's download, which checks every file's MD5; returns the folder of raw files."""
    import torchvision

    cls = torchvision.datasets.MNIST if name == "mnist" else torchvision.datasets.FashionMNIST
    try:
        cls(root=str(data_dir), train=True, download=True)
    except (OSError, RuntimeError) as e:
        raise NinError(f"{name}: download into {data_dir} failed ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                       f"put the IDX files in {data_dir} yourself, or check the network") from None
    return data_dir / _TORCHVISION_FOLDER[name] / "raw"


def locate(name: str, data_dir: Path, offline: bool) -> dict[str, Path]:
    """The paths of the four IDX files of `name`, downloading them unless `offline`."""
    for folder in _idx_folders(name, data_dir):
        found = _all_files(folder)
        if found:
            return found
    expected = ", ".join(f"{s}[.gz]" for pair in IDX_FILES.values() for s in pair)
    if offline:
        where = ", ".join(str(f) for f in _idx_folders(name, data_dir))
        raise NinError(f"{name}: no IDX files found in {where}; expected {expected}; "
                       "pass --data-dir with the folder that holds them, or drop --offline to download")
    found = _all_files(_download_idx(name, data_dir))
    if not found:
        raise NinError(f"{name}: the download left no IDX files in {data_dir}; expected {expected}")
    return found


def read_idx_split(paths: dict[str, Path], split: str, image_size: int, num_classes: int):
    """(images (N, 1, H, W) uint8, labels (N,) int64) of one split, checked against each other."""
    images_stem, labels_stem = IDX_FILES[split]
    images = read_idx(paths[images_stem], ndim=3)
    labels = read_idx(paths[labels_stem], ndim=1)
    if len(images) != len(labels):
        raise NinError(f"{paths[images_stem]}: {len(images)} images but {paths[labels_stem]} has {len(labels)} labels; "
                       "one of the two files is wrong")
    if images.shape[1:] != (image_size, image_size):
        raise NinError(f"{paths[images_stem]}: images of {images.shape[1]}x{images.shape[2]}, expected "
                       f"{image_size}x{image_size}")
    if labels.size and labels.max() >= num_classes:
        raise NinError(f"{paths[labels_stem]}: label {labels.max()} out of range 0-{num_classes - 1}")
    return images[:, None].copy(), labels.astype(np.int64)


def read(info, located: dict[str, Path], split: str, scratch: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One split ("train" or "test") of the IDX files that `locate` found."""
    return read_idx_split(located, split, info.image_size, info.num_classes)

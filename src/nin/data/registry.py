"""Every fact about each data set, in one table: shape, classes, the paper's preprocessing and split,
augmentation, the default model, how it is named for people, and the reader of its files.

A reader is a module with `locate(name, data_dir, offline)`, which finds the files (downloading them
unless offline) and reads nothing, so it is a cheap presence check, and `read(info, located, split,
scratch)`, which returns (uint8 images (N, C, H, W), int64 labels) of one split.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from nin.data import cifar, mnist, svhn
from nin.errors import NinError

PREPROCESSINGS = ("none", "gcn-zca", "lcn")
VAL_SPLITS = ("none", "paper")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGITS = tuple(str(i) for i in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
MEASURED_WHEN_LOADED = (0.0,)   # mean/std measured on the training split at load time
# The paper's validation sets: the last 10,000 training images (CIFAR, the MNISTs), or for SVHN
# Goodfellow et al.'s 400 per class from train and 200 per class from extra.
LAST_10000, PER_CLASS = "last-10000", "per-class"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    display_name: str
    in_channels: int
    image_size: int
    class_names: tuple[str, ...]
    # Per-channel mean and std on the 0-1 scale of the training images, for `--preprocess none`.
    mean: tuple[float, ...]
    std: tuple[float, ...]
    paper_preprocess: str     # what the paper did: none, gcn-zca or lcn
    augment_shift: int        # --augment: random translation of up to this many pixels
    augment_flip: bool        # --augment: horizontal flips (never for digits)
    default_preset: str       # the paper's model for it: what --preset defaults to
    reader: ModuleType        # see the module docstring
    pool: tuple[str, ...] = ("train",)   # the raw splits that training draws from
    validation: str = LAST_10000
    fingerprinted: bool = True   # data/releases.py knows its official pixels

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def splits(self) -> tuple[str, ...]:
        return (*self.pool, "test")


DATASETS = {
    # MNIST mean/std: ../shared/data/README.md (full training sets).
    "mnist": DatasetInfo("mnist", "MNIST", 1, 28, DIGITS, (0.1307,), (0.3081,), "none", 2, False, "nin-mnist", mnist),
    # Clothes are left-right symmetric: flips are fair.
    "fashion-mnist": DatasetInfo("fashion-mnist", "Fashion-MNIST", 1, 28, FASHION_CLASSES, (0.2860,), (0.3530,),
                                 "none", 2, True, "nin-mnist", mnist),
    "cifar10": DatasetInfo("cifar10", "CIFAR-10", 3, 32, CIFAR10_CLASSES, MEASURED_WHEN_LOADED,
                           MEASURED_WHEN_LOADED, "gcn-zca", 4, True, "nin-cifar10", cifar),
    "cifar100": DatasetInfo("cifar100", "CIFAR-100", 3, 32, tuple(f"class {i}" for i in range(100)),
                            MEASURED_WHEN_LOADED, MEASURED_WHEN_LOADED, "gcn-zca", 4, True, "nin-cifar100", cifar),
    # SVHN is not available offline here, so no fingerprint of its release was ever measured.
    "svhn": DatasetInfo("svhn", "SVHN train + extra", 3, 32, DIGITS, MEASURED_WHEN_LOADED, MEASURED_WHEN_LOADED,
                        "lcn", 2, False, "nin-svhn", svhn, pool=("train", "extra"), validation=PER_CLASS,
                        fingerprinted=False),
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise NinError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
    return DATASETS[name]

"""CIFAR-10 and CIFAR-100 in the official binary and python layouts (and their archives)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nin.data.archives import md5sum, safe_extract
from nin.errors import NinError

RECORD_PIXELS = 3 * 32 * 32


@dataclass(frozen=True)
class CifarLayout:
    binary_folder: str
    binary_train: tuple[str, ...]
    binary_test: str
    label_bytes: int            # bytes before the pixels of a binary record
    label_byte: int             # which of them is the class label
    python_folder: str
    python_label_key: str
    binary_archive: str
    binary_archive_md5: str     # from the CIFAR web page
    python_archive: str
    url_base: str = "https://www.cs.toronto.edu/~kriz/"

    @property
    def record_bytes(self) -> int:
        return self.label_bytes + RECORD_PIXELS


LAYOUTS = {
    "cifar10": CifarLayout(
        binary_folder="cifar-10-batches-bin", binary_train=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        binary_test="test_batch.bin", label_bytes=1, label_byte=0,
        python_folder="cifar-10-batches-py", python_label_key="labels",
        binary_archive="cifar-10-binary.tar.gz", binary_archive_md5="c32a1d4ab5d03f1284b67883e8d87530",
        python_archive="cifar-10-python.tar.gz",
    ),
    "cifar100": CifarLayout(
        # Each record: coarse label, fine label, pixels. We use the 100 fine classes.
        binary_folder="cifar-100-binary", binary_train=("train.bin",), binary_test="test.bin",
        label_bytes=2, label_byte=1,
        python_folder="cifar-100-python", python_label_key="fine_labels",
        binary_archive="cifar-100-binary.tar.gz", binary_archive_md5="03b5dce01913d631647c71ecec9e9cb8",
        python_archive="cifar-100-python.tar.gz",
    ),
}

def _official_python_md5s(name: str) -> tuple[dict[str, str], dict[str, str], str]:
    """(train files, test files, archive MD5) of the official python release, as torchvision lists them."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    return dict(cls.train_list), dict(cls.test_list), cls.tgz_md5


def read_binary_file(path: Path, layout: CifarLayout, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) from one binary batch file, checked."""
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise NinError(f"{path}: cannot read ({e.strerror})") from None
    if raw.size == 0 or raw.size % layout.record_bytes:
        raise NinError(f"{path}: {raw.size} bytes is not a whole number of {layout.record_bytes}-byte CIFAR records; "
                       "the file is truncated or not a CIFAR binary batch: delete it and download it again")
    records = raw.reshape(-1, layout.record_bytes)
    labels = records[:, layout.label_byte].astype(np.int64)
    if labels.max() >= num_classes:
        raise NinError(f"{path}: label {labels.max()} out of range 0-{num_classes - 1}; is this the right data set?")
    return records[:, layout.label_bytes:].reshape(-1, 3, 32, 32), labels


def read_python_file(path: Path, expected_md5: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """A python-version batch, unpickled only once its MD5 matches the official release."""
    if not path.is_file():
        raise NinError(f"{path}: missing; the python-version folder is incomplete")
    actual = md5sum(path)
    if actual != expected_md5:
        raise NinError(f"{path}: MD5 {actual} is not the official release's {expected_md5}; refusing to unpickle it "
                       "(a pickle can run code). Use the binary version (cifar-10-batches-bin), which needs no pickle")
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="latin1")   # noqa: S301 - verified against the official MD5 above
    images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return images, np.asarray(batch[label_key], dtype=np.int64)


def _concat(parts):
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _binary_split(folder: Path, layout: CifarLayout, split: str, num_classes: int):
    missing = [f for f in (*layout.binary_train, layout.binary_test) if not (folder / f).is_file()]
    if missing:
        raise NinError(f"{folder}: missing {', '.join(missing)}; expected the official binary layout "
                       f"({', '.join(layout.binary_train)}, {layout.binary_test})")
    files = layout.binary_train if split == "train" else (layout.binary_test,)
    return _concat([read_binary_file(folder / f, layout, num_classes) for f in files])


def _python_split(folder: Path, name: str, layout: CifarLayout, split: str):
    train_md5s, test_md5s, _ = _official_python_md5s(name)
    md5s = train_md5s if split == "train" else test_md5s
    return _concat([read_python_file(folder / f, md5, layout.python_label_key) for f, md5 in md5s.items()])


def _extract_checked(archive: Path, expected_md5: str, data_dir: Path) -> None:
    actual = md5sum(archive)
    if actual != expected_md5:
        raise NinError(f"{archive}: MD5 {actual}, expected the official {expected_md5}; "
                       "the archive is incomplete or not the official one: delete it and download it again")
    safe_extract(archive, data_dir)


def locate(name: str, data_dir: Path, offline: bool) -> Path:
    """The first of `name`'s binary folder, python folder, binary archive, python archive in data_dir.

    Reads and extracts nothing (that is `read`'s work), so it is a cheap presence check. Without
    any of them, downloads the binary archive (no pickle involved) with torchvision's MD5-checked
    download, unless `offline`.
    """
    layout = LAYOUTS[name]
    for folder in (data_dir / layout.binary_folder, data_dir / layout.python_folder):
        if folder.is_dir():
            return folder
    for archive in (data_dir / layout.binary_archive, data_dir / layout.python_archive):
        if archive.is_file():
            return archive
    expected = f"{layout.binary_folder}/, {layout.python_folder}/, {layout.binary_archive} or {layout.python_archive}"
    if offline:
        raise NinError(f"{name}: none of {expected} in {data_dir}; pass --data-dir with the folder that holds "
                       "them, or drop --offline to download")
    from torchvision.datasets.utils import download_url

    try:
        download_url(layout.url_base + layout.binary_archive, str(data_dir), layout.binary_archive,
                     md5=layout.binary_archive_md5)
    except (OSError, RuntimeError) as e:
        raise NinError(f"{name}: download into {data_dir} failed ({str(e).splitlines()[0][:160]}); "
                       f"put {expected} there yourself, or check the network") from None
    return data_dir / layout.binary_archive


def _unpacked(name: str, located: Path) -> Path:
    """The folder of a located layout, extracting a checked archive the first time."""
    if located.is_dir():
        return located
    layout = LAYOUTS[name]
    binary = located.name == layout.binary_archive
    folder = located.parent / (layout.binary_folder if binary else layout.python_folder)
    if not folder.is_dir():
        md5 = layout.binary_archive_md5 if binary else _official_python_md5s(name)[2]
        _extract_checked(located, md5, located.parent)
    return folder


def read(info, located: Path, split: str, scratch: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) of split "train" or "test" of what `locate` found."""
    layout = LAYOUTS[info.name]
    folder = _unpacked(info.name, located)
    if folder.name == layout.binary_folder:
        return _binary_split(folder, layout, split, info.num_classes)
    return _python_split(folder, info.name, layout, split)

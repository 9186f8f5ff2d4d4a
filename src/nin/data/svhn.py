"""SVHN cropped digits (train_32x32.mat, test_32x32.mat, extra_32x32.mat)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nin.errors import NinError

SPLIT_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
URL_BASE = "http://ufldl.stanford.edu/housenumbers/"


def _official_md5s() -> dict[str, str]:
    from torchvision.datasets import SVHN

    return {split: md5 for split, (_url, _name, md5) in SVHN.split_list.items()}


# scipy's MATLAB reader is C code that a damaged file can crash (a segmentation fault, found by
# tests/test_fuzz_loaders.py), and not always: the same file may crash one process and not the
# next. So every file is parsed in a child process, which hands back plain arrays (.npy, no
# pickles); a crash there is reported, not suffered. The child also bounds memory: it writes the
# images already transposed to (N, 3, 32, 32), a chunk at a time, so the parent memory-maps them
# instead of holding a second copy (extra_32x32.mat alone is 1.6 GB of pixels).
_CHILD = """
import sys
import numpy as np
import scipy.io
mat = scipy.io.loadmat(sys.argv[1], variable_names=["X", "y"])
x, y = mat["X"], np.asarray(mat["y"])
np.save(sys.argv[3], y, allow_pickle=False)
if not (isinstance(x, np.ndarray) and x.ndim == 4 and x.shape[:3] == (32, 32, 3) and x.dtype == np.uint8):
    sys.exit(f"X has shape {getattr(x, 'shape', '?')} {getattr(x, 'dtype', type(x).__name__)}, expected 32x32x3xN uint8")
header = np.lib.format.open_memmap(sys.argv[2], mode="w+", dtype=np.uint8, shape=(x.shape[3], 3, 32, 32))
offset = header.offset
del header
with open(sys.argv[2], "r+b") as f:   # plain writes: the page cache, not this process, holds what is written
    f.seek(offset)
    for start in range(0, x.shape[3], 8192):
        f.write(np.ascontiguousarray(x[..., start:start + 8192].transpose(3, 2, 0, 1)).tobytes())
"""


def _load_in_child(path: Path, scratch: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8 memory-mapped from a scratch file, y as stored)."""
    import subprocess
    import sys
    import tempfile

    limit = 60 + 60 * path.stat().st_size // 100_000_000   # a minute, and one more per 100 MB
    with tempfile.TemporaryDirectory(prefix="nin-svhn-", dir=scratch) as tmp:
        x_path, y_path = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
        try:
            result = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(x_path), str(y_path)],
                                    capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            raise NinError(f"{path}: reading it took over {limit} s; is it an SVHN .mat file?") from None
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["the reader crashed"])[-1][:160]
            how = "crashed the MATLAB reader" if result.returncode < 0 else last
            raise NinError(f"{path}: not a readable SVHN .mat file ({how}); expected MATLAB arrays "
                           "X (32x32x3xN uint8) and y (Nx1): delete it and download it again")
        # The mapping outlives the file's name: the scratch folder goes now, its pages when the array does.
        return np.load(x_path, mmap_mode="r", allow_pickle=False), np.load(y_path, allow_pickle=False)


def read_svhn_mat(path: Path, scratch: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, memory-mapped; labels (N,) int64 with digit 0 as 0) from one .mat file.

    `scratch`: where the child process writes the images (default: the system's temporary folder).
    """
    path = Path(path)
    if not path.is_file():
        raise NinError(f"{path}: missing; expected an SVHN .mat file")
    x, y = _load_in_child(path, scratch)
    try:
        labels = np.asarray(y, dtype=np.int64).reshape(-1)
    except (ValueError, TypeError):
        raise NinError(f"{path}: y is not an array of integer labels") from None
    if len(labels) != len(x):
        raise NinError(f"{path}: {len(x)} images but {len(labels)} labels")
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise NinError(f"{path}: labels outside 1-10 (SVHN writes digit 0 as 10)")
    labels[labels == 10] = 0
    return x, labels


def locate(name: str, data_dir: Path, offline: bool) -> dict[str, Path]:
    """The paths of the three .mat files (split -> path), downloading them unless `offline`; reads nothing."""
    for folder in (data_dir, data_dir / "svhn"):
        found = {split: folder / name for split, name in SPLIT_FILES.items()}
        present = [p for p in found.values() if p.is_file()]
        if len(present) == len(found):
            return found
        if present:
            missing = [p.name for p in found.values() if not p.is_file()]
            raise NinError(f"{folder}: missing {', '.join(missing)}; the paper trains on train + extra, "
                           "so all three SVHN files are needed")
    if offline:
        raise NinError(f"svhn: no {', '.join(SPLIT_FILES.values())} in {data_dir} or {data_dir / 'svhn'}; "
                       "pass --data-dir with the folder that holds them, or drop --offline to download")
    from torchvision.datasets.utils import download_url

    md5s = _official_md5s()
    for split, name in SPLIT_FILES.items():
        try:
            download_url(URL_BASE + name, str(data_dir), name, md5=md5s[split])
        except (OSError, RuntimeError) as e:
            raise NinError(f"svhn: download of {name} into {data_dir} failed ({str(e).splitlines()[0][:160]}); "
                           "put the .mat files there yourself, or check the network") from None
    return {split: data_dir / name for split, name in SPLIT_FILES.items()}


def svhn_validation_indices(train_labels: np.ndarray, extra_labels: np.ndarray, seed: int,
                            per_class_train: int = 400, per_class_extra: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """The paper's validation set (Goodfellow et al.'s): 400 per class from train, 200 per class from extra.

    Returns the chosen indices into train and into extra, sorted; fixed by `seed`.
    """
    rng = np.random.default_rng(seed)

    def pick(labels, per_class):
        chosen = []
        for c in range(10):
            members = np.flatnonzero(labels == c)
            if len(members) < per_class:
                raise NinError(f"svhn: only {len(members)} images of class {c}, the validation split needs {per_class}")
            chosen.append(rng.choice(members, size=per_class, replace=False))
        return np.sort(np.concatenate(chosen))

    return pick(train_labels, per_class_train), pick(extra_labels, per_class_extra)


def read(info, located: dict[str, Path], split: str, scratch: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One split (train, extra or test): its images memory-mapped from a file written in `scratch`."""
    return read_svhn_mat(located[split], scratch)

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
# next. So a file that is not byte-for-byte an official release (MD5) is parsed in a child process,
# which hands back plain arrays (.npy, no pickles); a crash there is reported, not suffered.
_CHILD = """
import sys
import numpy as np
import scipy.io
mat = scipy.io.loadmat(sys.argv[1], variable_names=["X", "y"])
np.save(sys.argv[2], np.asarray(mat["X"]), allow_pickle=False)
np.save(sys.argv[3], np.asarray(mat["y"]), allow_pickle=False)
"""


def _is_official(path: Path) -> bool:
    from nin.data.archives import md5sum

    split = next((s for s, name in SPLIT_FILES.items() if name == path.name), None)
    if split is None or path.stat().st_size < 10_000_000:   # the official files are 60 MB and more
        return False
    return md5sum(path) == _official_md5s()[split]


def _load_in_child(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import subprocess
    import sys
    import tempfile

    limit = 60 + 60 * path.stat().st_size // 100_000_000   # a minute, and one more per 100 MB
    with tempfile.TemporaryDirectory(prefix="nin-svhn-") as tmp:
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
        return np.load(x_path, allow_pickle=False), np.load(y_path, allow_pickle=False)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N,) int64 with digit 0 as 0) from one .mat file."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise NinError(f"{path}: missing; expected an SVHN .mat file")
    if _is_official(path):
        try:
            mat = scipy.io.loadmat(path, variable_names=["X", "y"])
            x, y = mat["X"], mat["y"]
        except Exception as e:  # noqa: BLE001 - an official file that fails is a damaged copy
            raise NinError(f"{path}: not a readable SVHN .mat file ({type(e).__name__}); "
                           "delete it and download it again") from None
    else:
        x, y = _load_in_child(path)
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise NinError(f"{path}: X has shape {getattr(x, 'shape', '?')} {getattr(x, 'dtype', type(x).__name__)}, "
                       "expected 32x32x3xN uint8")
    try:
        labels = np.asarray(y, dtype=np.int64).reshape(-1)
    except (ValueError, TypeError):
        raise NinError(f"{path}: y is not an array of integer labels") from None
    if len(labels) != x.shape[3]:
        raise NinError(f"{path}: {x.shape[3]} images but {len(labels)} labels")
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise NinError(f"{path}: labels outside 1-10 (SVHN writes digit 0 as 10)")
    labels[labels == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels


def locate_svhn(data_dir: Path, offline: bool) -> dict[str, Path]:
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

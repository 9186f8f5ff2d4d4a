"""Data sets by name: raw arrays from each format's reader, the paper's splits and preprocessing, cached."""

from __future__ import annotations

import dataclasses
import hashlib
import mmap
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nin.data import preprocess, releases, svhn
from nin.data.cache import build_or_reuse
from nin.data.preprocess import ZcaParams
from nin.data.registry import (LAST_10000, MEASURED_WHEN_LOADED, PREPROCESSINGS, VAL_SPLITS, DatasetInfo,
                               dataset_info)
from nin.errors import NinError

@dataclass(frozen=True)
class Split:
    images: torch.Tensor   # (N, C, H, W): uint8 (raw) or float16 (preprocessed)
    labels: torch.Tensor   # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class LoadedDataset:
    info: DatasetInfo
    train: Split
    val: Split | None
    test: Split
    preprocess: str
    record: dict           # how the splits and preprocessing were made; written to the run folder
    zca: ZcaParams | None = None   # gcn-zca: the whitening fitted on the training split


# CIFAR and the MNISTs: the paper's validation set is the last 10,000 training images.
HOLDOUT = 10_000
# Images preprocessed at a time: LCN's convolutions need ~0.25 GB per 1,000 images (measured: 2.4 GB
# for 10,000, 0.6 GB for 2,500), and SVHN must stay under 4 GB in all (benchmarks/svhn_memory.py).
PREPROCESS_CHUNK = 2_500


def default_data_dir() -> Path:
    return Path(os.environ.get("NIN_DATA") or "data")


def default_cache_dir() -> Path:
    return Path(os.environ.get("NIN_CACHE") or Path.home() / ".cache" / "nin")


def locate(name: str, data_dir: Path | None = None, offline: bool = True):
    """Where `name`'s files are in data_dir (NinError if they are not): reads and extracts nothing."""
    info = dataset_info(name)
    return info.reader.locate(name, Path(data_dir) if data_dir is not None else default_data_dir(), offline)


def _read_raw(name: str, data_dir: Path, offline: bool, scratch: Path | None = None,
              splits: tuple[str, ...] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (uint8 images (N, C, H, W), int64 labels), straight from the files; all splits unless `splits`.

    SVHN's images come memory-mapped from files its reader writes in `scratch`."""
    info = dataset_info(name)
    located = info.reader.locate(name, data_dir, offline)
    return {split: info.reader.read(info, located, split, scratch) for split in splits or info.splits}


def release_pages(array) -> None:
    """Drop a memory-mapped array's pages from this process's resident memory (they stay in the page
    cache and come back on the next touch); a no-op for other arrays."""
    mapping = getattr(array, "_mmap", None)
    if mapping is not None and hasattr(mapping, "madvise"):
        mapping.madvise(mmap.MADV_DONTNEED)


class StackedRows:
    """The rows of several arrays as one array, without copying them (SVHN's train + extra pool).

    Indexing with a slice or an index array gives a new in-memory array of those rows only; the
    memory-mapped parts are released after each read, so reading them all never holds them all.
    """

    def __init__(self, parts: list[np.ndarray]):
        self.parts = parts
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        self.shape = (int(self.starts[-1]), *parts[0].shape[1:])
        self.dtype = parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        index = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index)
        out = np.empty((len(index), *self.shape[1:]), self.dtype)
        part_of = np.searchsorted(self.starts, index, side="right") - 1
        for k, part in enumerate(self.parts):
            mine = part_of == k
            if mine.any():
                out[mine] = part[index[mine] - self.starts[k]]
                release_pages(part)
        return out


def _split_indices(name: str, raw: dict, val_split: str, seed: int) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Indices of the training and validation images into the training pool, and how they were chosen.

    The pool is the training images, followed for SVHN by the extra images.
    """
    n_train = len(raw["train"][1])
    if dataset_info(name).validation != LAST_10000:   # SVHN: per class, from train and extra
        n_pool = n_train + len(raw["extra"][1])
        if val_split == "none":
            return np.arange(n_pool), None, {"val_split": "none", "train": "train + extra"}
        val_train, val_extra = svhn.svhn_validation_indices(raw["train"][1], raw["extra"][1], seed)
        val = np.concatenate([val_train, n_train + val_extra])
        train = np.setdiff1d(np.arange(n_pool), val, assume_unique=True)
        return train, val, {"val_split": "paper", "seed": seed, "rule": "400 per class from train, 200 per class "
                            "from extra; indices into train followed by extra",
                            "val_indices": val.tolist()}
    if val_split == "none":
        return np.arange(n_train), None, {"val_split": "none"}
    if n_train <= HOLDOUT:
        raise NinError(f"--val-split paper holds out the last {HOLDOUT} training images, but {name} has {n_train}")
    return (np.arange(n_train - HOLDOUT), np.arange(n_train - HOLDOUT, n_train),
            {"val_split": "paper", "rule": f"the last {HOLDOUT} training images"})


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode())
        for part in a.parts if isinstance(a, StackedRows) else [a]:
            for start in range(0, len(part), 65_536):   # in slices, so a memory map is never resident whole
                h.update(np.ascontiguousarray(part[start:start + 65_536]).data)
                release_pages(part)
    return h.hexdigest()


def _as_split(images: np.ndarray, labels: np.ndarray) -> Split:
    if not images.flags.writeable:   # a read-only memory map (SVHN's reader): torch wants its own copy
        images = np.array(images)
    return Split(torch.from_numpy(images), torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)))


def _preprocess_to_cache(folder: Path, method: str, pool_x, pool_y, train_idx, val_idx, test) -> dict:
    """Preprocess each split into float16 .npy files in `folder` (a new one: see data/cache.py); returns the
    record (ZCA stats and all)."""
    parts = {"train": train_idx, "val": val_idx}
    record: dict = {"method": method, "dtype": "float16"}
    if method == "gcn-zca":
        train = preprocess.global_contrast_normalize(pool_x[train_idx].reshape(len(train_idx), -1))
        zca = preprocess.fit_zca(train)
        np.save(folder / "zca_mean.npy", zca.mean)
        np.save(folder / "zca_matrix.npy", zca.matrix)
        transform = lambda x: preprocess.gcn_zca_images(x, zca)
        record.update(gcn_scale=preprocess.GCN_SCALE, zca_filter_bias=preprocess.ZCA_FILTER_BIAS,
                      zca_fitted_on="train split")
        del train
    else:
        transform = preprocess.local_contrast_normalize
        record.update(lcn_kernel=preprocess.LCN_KERNEL_SIZE, lcn_sigma=preprocess.LCN_SIGMA,
                      lcn_threshold=preprocess.LCN_THRESHOLD)

    def write(split: str, source_x, index, labels):
        # One float copy at a time: chunks go straight into a float16 file on disk.
        n = len(index) if index is not None else len(source_x)
        path = folder / f"{split}_images.npy"
        header = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, *source_x.shape[1:]))
        offset = header.offset
        del header
        # Plain writes rather than the memory map: written pages then sit in the page cache, not in
        # this process's resident memory (SVHN's float16 train + extra is 3.7 GB).
        with open(path, "r+b") as f:
            f.seek(offset)
            for start in range(0, n, PREPROCESS_CHUNK):
                rows = index[start:start + PREPROCESS_CHUNK] if index is not None \
                    else slice(start, start + PREPROCESS_CHUNK)
                f.write(np.ascontiguousarray(transform(source_x[rows]), dtype=np.float16).tobytes())
        np.save(folder / f"{split}_labels.npy", labels)

    for split, index in parts.items():
        if index is not None:
            write(split, pool_x, index, pool_y[index])
    write("test", test[0], None, test[1])
    return record


def _load_cached(folder: Path, has_val: bool) -> tuple[Split, Split | None, Split]:
    def split(name):
        # Copy-on-write memory map: pages are read when batches touch them, never copied whole.
        return _as_split(np.load(folder / f"{name}_images.npy", mmap_mode="c"), np.load(folder / f"{name}_labels.npy"))

    return split("train"), split("val") if has_val else None, split("test")


def _channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = torch.from_numpy(images[: min(len(images), 50_000)]).float().div_(255)
    return tuple(x.mean(dim=(0, 2, 3)).tolist()), tuple(x.std(dim=(0, 2, 3)).tolist())


def load_dataset(name: str, data_dir: Path | None = None, offline: bool = False, val_split: str = "none",
                 preprocess: str | None = None, seed: int = 0, cache_dir: Path | None = None) -> LoadedDataset:
    """Training, validation (or None) and test splits of a data set, in memory or memory-mapped.

    `preprocess` None means what the paper did for this data set. Preprocessed arrays
    are cached in `cache_dir`, keyed by the content of the source files and every
    parameter, so a second run starts in seconds.
    """
    info = dataset_info(name)
    method = preprocess or info.paper_preprocess
    if method not in PREPROCESSINGS:
        raise NinError(f"unknown preprocessing {method!r}: expected one of {', '.join(PREPROCESSINGS)}")
    if val_split not in VAL_SPLITS:
        raise NinError(f"unknown validation split {val_split!r}: expected one of {', '.join(VAL_SPLITS)}")
    if method != "none" and info.in_channels != 3:
        raise NinError(f"--preprocess {method} is for the colour data sets; {name} takes --preprocess none")
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    cache_dir = Path(cache_dir or default_cache_dir())
    cache_dir.mkdir(parents=True, exist_ok=True)   # SVHN's reader writes its images there, to memory-map them
    raw = _read_raw(name, data_dir, offline, scratch=cache_dir)
    train_idx, val_idx, record = _split_indices(name, raw, val_split, seed)
    record["description"] = releases.describe(info, raw["train"], raw["test"])
    test = raw["test"]
    if len(info.pool) > 1:   # SVHN's train + extra, without a concatenated copy
        pool_x = StackedRows([raw[split][0] for split in info.pool])
        pool_y = np.concatenate([raw[split][1] for split in info.pool])
    else:
        pool_x, pool_y = raw["train"]
    del raw

    if method == "none":
        if info.mean == MEASURED_WHEN_LOADED:
            mean, std = _channel_stats(pool_x[train_idx[:50_000]])
            info = dataclasses.replace(info, mean=mean, std=std)
        take = lambda index: _as_split(pool_x if len(index) == len(pool_x) and isinstance(pool_x, np.ndarray)
                                       else pool_x[index], pool_y[index])
        return LoadedDataset(info, take(train_idx), take(val_idx) if val_idx is not None else None,
                             _as_split(*test), method, {**record, "preprocess": "none"})

    key = _digest(pool_x, pool_y, test[0], test[1], train_idx, val_idx if val_idx is not None else np.zeros(0),
                  np.frombuffer(json.dumps([method, preprocess_constants()]).encode(), np.uint8))
    folder = cache_dir / f"{name}-{method}-{key[:16]}"
    meta = build_or_reuse(folder, lambda tmp: {"dataset": name, "key": key, **_preprocess_to_cache(
        tmp, method, pool_x, pool_y, train_idx, val_idx, test)})
    del pool_x
    train, val, test_split = _load_cached(folder, val_idx is not None)
    zca = ZcaParams(np.load(folder / "zca_mean.npy"), np.load(folder / "zca_matrix.npy")) \
        if method == "gcn-zca" else None
    meta = {k: v for k, v in meta.items() if k != "arrays"}
    return LoadedDataset(info, train, val, test_split, method, {**record, "preprocess": meta, "cache": str(folder)},
                         zca)


def describe_data(name: str, data_dir: Path | None = None, offline: bool = True) -> str:
    """What the data in data_dir is, recognised from its pixels (see data/releases.py)."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    raw = _read_raw(name, data_dir, offline, splits=("train", "test"))
    return releases.describe(dataset_info(name), raw["train"], raw["test"])


def load_raw_test(name: str, data_dir: Path | None = None, offline: bool = False) -> Split:
    """The test split as stored in the files (uint8, no preprocessing): for pictures and new-input paths."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    return _as_split(*_read_raw(name, data_dir, offline, splits=("test",))["test"])


def load_raw_val(name: str, data_dir: Path | None = None, offline: bool = False) -> Split:
    """The paper's validation images (what --val-split paper holds out) as stored in the files."""
    if dataset_info(name).validation != LAST_10000:
        raise NinError(f"{name}: its validation images are drawn per class from train and extra when training "
                       "loads them; read them with `nin train --val-split paper` instead")
    images, labels = _read_raw(name, Path(data_dir) if data_dir is not None else default_data_dir(), offline,
                               splits=("train",))["train"]
    return _as_split(images[-HOLDOUT:], labels[-HOLDOUT:])


def preprocess_constants() -> dict:
    """The preprocessing module's numeric constants: part of the cache key."""
    return {k: v for k, v in vars(preprocess).items() if k.isupper() and isinstance(v, (int, float))}

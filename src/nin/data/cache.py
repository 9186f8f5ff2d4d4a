"""The preprocessing cache: one folder per data set, split and preprocessing, whole or absent, checked on read.

A folder is built under a temporary name and renamed into place when complete, so a reader never
sees half of one, and of two processes building the same entry one wins and the other uses its
folder. meta.json records the shape, dtype, size and sha256 of every array file; each read checks
them all (hashing a CIFAR entry, ~400 MB, takes about a second), and a damaged entry is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nin.errors import NinError
from nin.files import atomic_write_json

META_FILE = "meta.json"


class CacheDamaged(Exception):
    """A cache folder that must not be used; the message says why."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def _array_record(path: Path) -> dict:
    array = np.load(path, mmap_mode="r")
    return {"shape": list(array.shape), "dtype": str(array.dtype), "bytes": path.stat().st_size,
            "sha256": file_sha256(path)}


def seal(folder: Path, meta: dict) -> None:
    """Write meta.json: `meta` plus a record of every array file in `folder`."""
    arrays = {path.name: _array_record(path) for path in sorted(folder.glob("*.npy"))}
    atomic_write_json(folder / META_FILE, {**meta, "arrays": arrays})


def verify(folder: Path) -> dict:
    """The folder's meta.json, once every array it lists matches its record; else CacheDamaged."""
    try:
        meta = json.loads((folder / META_FILE).read_text())
        arrays = meta["arrays"]
    except FileNotFoundError:
        raise CacheDamaged(f"{META_FILE} is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CacheDamaged(f"{META_FILE} is unreadable or from an older version ({type(e).__name__})") from None
    for name, expected in arrays.items():
        path = folder / name
        try:
            size = path.stat().st_size
            if size != expected["bytes"]:
                raise CacheDamaged(f"{name} has {size} bytes, {expected['bytes']} were written")
            array = np.load(path, mmap_mode="r")
            if list(array.shape) != expected["shape"] or str(array.dtype) != expected["dtype"]:
                raise CacheDamaged(f"{name} is {array.dtype} {list(array.shape)}, "
                                   f"{expected['dtype']} {expected['shape']} was written")
            if file_sha256(path) != expected["sha256"]:
                raise CacheDamaged(f"{name}'s content changed since it was written (sha256 differs)")
        except (OSError, ValueError) as e:
            raise CacheDamaged(f"{name} cannot be read ({type(e).__name__}: {str(e)[:80]})") from None
    return meta


def _set_aside(folder: Path) -> None:
    """Move a damaged folder out of the way (then delete it); another process may have done so already."""
    aside = folder.with_name(f".{folder.name}.damaged-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.rename(folder, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def _remove_abandoned(folder: Path) -> None:
    """Temporary folders of builds whose process is gone (killed mid-build)."""
    for tmp in folder.parent.glob(f".{folder.name}.*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build_or_reuse(folder: Path, build: Callable[[Path], dict]) -> dict:
    """The meta.json of a verified cache folder; `build(tmp_folder)` fills a new one when it is missing or damaged.

    `build` writes the array files into the folder it is given and returns what meta.json should record.
    """
    folder = Path(folder)
    if folder.is_dir():
        try:
            return verify(folder)
        except CacheDamaged as e:
            print(f"nin: note: {folder}: the cached arrays are damaged ({e}); rebuilding them", file=sys.stderr)
            _set_aside(folder)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(folder)
        tmp.mkdir()
        seal(tmp, build(tmp))
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)   # another process finished the same entry first: use it
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise NinError(f"{folder.parent}: cannot write the preprocessing cache ({e.strerror}); "
                       "set NIN_CACHE to a writable folder with a few GB free") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        return verify(folder)
    except CacheDamaged as e:
        raise NinError(f"{folder}: the cache entry just written does not read back ({e}); "
                       "check the disk, or set NIN_CACHE to another folder") from None

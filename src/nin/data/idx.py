"""Reading the IDX files of MNIST and Fashion-MNIST (gzipped or not), checked."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from nin.errors import NinError

# IDX magic numbers: 0x0000 0x08 (uint8) then the number of dimensions.
_MAGIC = {3: 2051, 1: 2049}


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """A uint8 array of `ndim` dimensions from an IDX file; NinError on anything else."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise NinError(f"{path}: cannot read as IDX{' (gzip)' if path.suffix == '.gz' else ''} ({e}); "
                       "the file is truncated or corrupt: delete it and download it again") from None
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise NinError(f"{path}: {len(raw)} bytes is too short for an IDX header; delete it and download it again")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _MAGIC[ndim]:
        raise NinError(f"{path}: IDX magic number {magic}, expected {_MAGIC[ndim]} "
                       f"(uint8, {ndim} dimensions); is this the right file?")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header_size + int(np.prod(dims))
    if len(raw) != expected:
        raise NinError(f"{path}: {len(raw)} bytes, expected {expected} for shape {dims}; "
                       "the file is truncated or corrupt: delete it and download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)

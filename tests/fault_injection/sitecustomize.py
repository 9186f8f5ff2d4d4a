"""Loaded at start-up by processes that tests/test_resume.py starts with this folder on PYTHONPATH.

It slows every atomic write of nin: the first half of the data goes to the temporary file beside
the target, then a pause of $NIN_TEST_SLOW_WRITE_SECONDS, then the real write. A kill in the pause
leaves a half-written temporary file, as a crash inside a write would.
"""

import os
import tempfile
import time
from pathlib import Path

import nin.files

_write = nin.files.atomic_write_bytes
_PAUSE = float(os.environ.get("NIN_TEST_SLOW_WRITE_SECONDS") or 0)


def _slow_write(path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data[:len(data) // 2])
        f.flush()
    time.sleep(_PAUSE)
    os.unlink(tmp)
    _write(path, data)


nin.files.atomic_write_bytes = _slow_write

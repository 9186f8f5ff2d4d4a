"""File integrity and safe archive extraction."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

from nin.errors import NinError


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a tar archive into `target`, refusing any member that would land outside it.

    Uses tarfile's "data" filter (no absolute paths, no `..`, no links out, no device
    files), and checks every member's resolved path before extracting anything.
    """
    target = Path(target).resolve()
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                destination = (target / member.name).resolve()
                if member.name.startswith("/") or not destination.is_relative_to(target):
                    raise NinError(f"{archive}: member {member.name!r} would be written outside {target}; "
                                   "refusing to extract this archive")
            tar.extractall(target, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise NinError(f"{archive}: cannot extract ({type(e).__name__}: {str(e)[:120]}); "
                       "the archive is truncated, corrupt or unsafe: delete it and download it again") from None

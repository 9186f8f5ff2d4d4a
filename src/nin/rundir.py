"""The run folder: the names of its files, who may write it, and its metrics file.

A run folder belongs to one run. `claim` takes a lock that dies with its process (flock), so a
second `nin train` aimed at a folder in use is refused, and a killed run leaves nothing locked;
a folder that holds another run's files is refused unless the caller passes `overwrite`.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import os
from pathlib import Path

from nin.errors import NinError
from nin.files import atomic_write_text

CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, DATA_FILE = "config.json", "metrics.csv", "checkpoint.pt", "data.json"
WEIGHTS_FILE, CARD_FILE, REPORT_FILE = "weights.safetensors", "card.json", "report.html"
LOCK_FILE = ".lock"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, DATA_FILE, WEIGHTS_FILE, CARD_FILE, REPORT_FILE)
# The files that hold training's work: a folder with any of them is a run that a new one must not replace.
WORK_FILES = (CHECKPOINT_FILE, WEIGHTS_FILE, CARD_FILE)
# The metrics columns that measure the machine, not the training: a resumed run matches an uninterrupted
# one in every other column.
TIMING_COLUMNS = ("images_per_second", "epoch_seconds", "elapsed_seconds")


def existing_run_files(run_dir: Path) -> list[str]:
    return [name for name in RUN_FILES if (Path(run_dir) / name).exists()]


class RunFolderLock:
    """An exclusive flock on RUN_DIR/.lock, held until `release` or the process ends."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise NinError(f"{self.path.parent}: cannot write there ({e.strerror}); choose another --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise NinError(f"{self.path.parent}: in use by another nin process (pid {holder}); wait for it "
                               "to finish, or choose another --out") from None
            raise NinError(f"{self.path}: cannot lock it ({e.strerror})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)   # closing drops the flock; the file stays, harmless and unlocked
            self._fd = None


def claim(run_dir: Path, resume: bool, overwrite: bool) -> RunFolderLock:
    """Lock the folder for this process; refuse it if it holds another run's work (unless `overwrite`).

    With `overwrite` the other run's files are deleted first, so the folder never mixes two runs;
    so are the files of a run that was killed before it saved a checkpoint (nothing to lose).
    """
    run_dir = Path(run_dir)
    lock = RunFolderLock(run_dir)
    lock.acquire()
    try:
        found = existing_run_files(run_dir)
        work = [name for name in found if name in WORK_FILES]
        if resume:
            if CHECKPOINT_FILE not in found:
                raise NinError(f"{run_dir / CHECKPOINT_FILE}: no checkpoint there to resume from; start the run "
                               "with `nin train --out` instead")
        elif work and not overwrite:
            state = "a finished run" if CARD_FILE in work else "an unfinished run"
            way_on = "choose another --out, or pass --overwrite to replace it"
            if CARD_FILE not in work and CHECKPOINT_FILE in work:
                way_on = f"continue it with `nin train --resume {run_dir}`, " + way_on
            raise NinError(f"{run_dir}: holds {state} ({', '.join(work)}); {way_on}")
        else:   # --overwrite, or a run that died before saving any work: its files go, so nothing mixes
            for name in found:
                (run_dir / name).unlink()
    except BaseException:
        lock.release()
        raise
    return lock


def metric_columns(rows: list[dict]) -> list[str]:
    """The union of the rows' keys, in order of appearance."""
    return list(dict.fromkeys(key for row in rows for key in row))


def read_metrics(path: Path) -> list[dict]:
    """The rows `write_metrics` wrote, as numbers; a column a row has no value in is left out of that row."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def untimed_metrics(run_dir: Path) -> list[dict]:
    """A run's metrics rows without the TIMING_COLUMNS: what a resumed run must share with an uninterrupted one."""
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in read_metrics(run_dir / METRICS_FILE)]


def write_metrics(path: Path, rows: list[dict]) -> None:
    """Every column any row has, in order of appearance: a run resumed from an older version's checkpoint
    gains columns mid-way, and its earlier rows have them empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=metric_columns(rows), restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())

"""Where a result came from: the git commit of the code, the machine it ran on, and the memory it took."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
# What decides a result; edits elsewhere (README, results/ that runs write) do not make a run "uncommitted".
CODE_PATHS = ("src", "pyproject.toml")   # src/nin/experiments/ included


@functools.cache
def commit() -> str:
    """HEAD of the repository this code runs from, '+uncommitted' if tracked code differs; 'unknown' outside git.

    Read once per process: the commit of the code as loaded, even if the tree changes during a long run.
    """
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS], cwd=REPO,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


def short_commit(full: str) -> str:
    """A commit() value as tables show it: 8 hex digits, '(uncommitted changes)' where the code differed."""
    if full == "unknown":
        return full
    return full[:8] + (" (uncommitted changes)" if full.endswith("+uncommitted") else "")


@functools.cache
def _cpuinfo() -> str:
    """Linux's /proc/cpuinfo, read once per process; empty elsewhere."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_bf16() -> bool:
    """True where the CPU does bf16 matrix products natively (AVX-512 BF16 or AMX)."""
    flags = _cpuinfo()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def machine() -> str:
    """The GPU's name, else the CPU's model with the vector instructions PyTorch uses on it and the thread count.

    The instructions are named because one model name has covered machines of very different speed here (an
    AMD EPYC with AVX-512 BF16, another with AVX2 only at about a third of its CIFAR images/s).
    """
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    capability = torch.backends.cpu.get_cpu_capability() + (" with bf16" if cpu_has_bf16() else "")
    model = platform.processor() or "CPU"
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    threads = torch.get_num_threads()
    return f"{model} ({capability}), {threads} thread{'' if threads == 1 else 's'}"


def peak_memory_bytes() -> int:
    """This process's peak resident memory: Linux's VmHWM, else ru_maxrss.

    VmHWM first because ru_maxrss, after fork and exec, starts from the parent's resident size: a
    process started by a big parent (pytest, a benchmark that just wrote its data) reports the parent's.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource   # here: the module does not exist on Windows

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024   # Linux reports KiB


def machine_kind(machine: str) -> str:
    """A slug of a machine's kind, without its thread count: "amd-epyc-avx2", "intel-xeon" (file names, record keys)."""
    kind = machine.split(",")[0].lower().replace("(r)", "").replace("processor", "")
    return "-".join(word for word in "".join(c if c.isalnum() else " " for c in kind).split() if word != "with")

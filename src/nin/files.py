"""Files written atomically (rename over the old one), and weights and checkpoints read without unpickling."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from nin.errors import NinError

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync it, then rename over `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise NinError(f"{path.parent}: cannot write there ({e.strerror}); choose another --out") from None
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)   # mkstemp makes 0600; the final file gets the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:   # also Ctrl-C: never leave a half-written temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise NinError(f"{path}: write failed ({e.strerror}); the previous version, if any, is untouched") from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


# Weights: safetensors, with the model's description in the metadata so a file stands alone.
_META_KEY = "nin"
PREPROCESS_PREFIX = "preprocess."   # weights-file tensors that are not model parameters (the ZCA whitening)


def save_weights(path: Path, state_dict: dict[str, torch.Tensor], meta: dict) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    atomic_write_bytes(path, safetensors_save(tensors, metadata={_META_KEY: json.dumps(meta, sort_keys=True)}))


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict, meta) from a weights file written by `save_weights`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise NinError(f"{path}: cannot read the weights file ({e.strerror})") from None
    try:
        tensors = safetensors_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
        meta = json.loads(header["__metadata__"][_META_KEY])
    except (SafetensorError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise NinError(f"{path}: not a nin weights file (expected safetensors with nin metadata); "
                       "pass a run folder or a weights.safetensors written by `nin train`") from None
    return tensors, meta


def save_checkpoint(path: Path, state: dict) -> None:
    """A training checkpoint of tensors, numbers, strings, lists and dicts only (weights_only-loadable)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise NinError(f"{path}: no checkpoint there; pass a run folder written by `nin train`")
    try:
        # weights_only=True refuses any pickled object other than tensors and plain containers.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here means a bad file, which is the user's
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise NinError(f"{path}: not a valid nin checkpoint ({reason}); "
                       "it is truncated, corrupt or not made by `nin train`") from None

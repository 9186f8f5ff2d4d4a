"""Device, precision and thread set-up, decided once per run."""

from __future__ import annotations

import contextlib

import torch

from nin.errors import NinError
from nin.provenance import cpu_has_bf16


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NinError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise NinError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None


def use_bf16(device: torch.device, precision: str) -> bool:
    if precision == "fp32":
        return False
    supported = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_bf16()
    if precision == "bf16" and not supported:
        raise NinError(f"--precision bf16: this {device.type.upper()} has no native bf16; use --precision fp32 or auto")
    return supported


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast (weights and optimizer stay fp32), or nothing."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)

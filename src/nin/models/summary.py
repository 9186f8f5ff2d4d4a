"""Per-layer output shapes, parameters and multiply-accumulates of a model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]   # (C, H, W) for one image
    params: int
    macs: int                       # multiply-accumulates for one image


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        k_h, k_w = module.kernel_size
        return output[0].numel() * (module.in_channels // module.groups) * k_h * k_w
    if isinstance(module, nn.Linear):
        return output[0].numel() * module.in_features
    return 0


def summarize(model: nn.Module, input_shape: tuple[int, int, int]) -> list[LayerRow]:
    """Run one image of `input_shape` (C, H, W) through `model`, one row per leaf layer that ran."""
    rows: list[LayerRow] = []
    names = {module: name for name, module in model.named_modules()}

    def record(module, _inputs, output):
        if isinstance(module, (nn.Identity, nn.Dropout)):
            return
        params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append(LayerRow(names[module], type(module).__name__, tuple(output.shape[1:]), params, _macs(module, output)))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(record) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rows


def forward_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    return sum(row.macs for row in summarize(model, input_shape))


def format_summary(rows: list[LayerRow], total_params: int) -> str:
    """A fixed-width table with totals. The parameter total is the model's, so nothing can be missed."""
    header = f"{'layer':<22} {'type':<10} {'output':>14} {'params':>12} {'MACs':>15}"
    lines = [header, "-" * len(header)]
    for r in rows:
        shape = "x".join(str(s) for s in r.output_shape)
        lines.append(f"{r.name:<22} {r.kind:<10} {shape:>14} {r.params:>12,} {r.macs:>15,}")
    lines.append("-" * len(header))
    macs = sum(r.macs for r in rows)
    lines.append(f"{'total':<22} {'':<10} {'':>14} {total_params:>12,} {macs:>15,}")
    lines.append(f"{total_params:,} parameters, {macs / 1e6:.1f} M multiply-accumulates per image")
    return "\n".join(lines)

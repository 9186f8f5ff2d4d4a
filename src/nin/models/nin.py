"""The NIN network built from a declarative description (paper, section 3)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from nin.models.blocks import MLPConv


@dataclass(frozen=True)
class MlpConvSpec:
    kernel: int
    channels: tuple[int, ...]     # first: k x k conv; the rest: 1x1 convs
    pool: str | None = "max"      # 3x3 stride 2 pooling after the block, or None
    dropout: float = 0.0          # dropout on the block's (pooled) output


@dataclass(frozen=True)
class ModelConfig:
    in_channels: int
    num_classes: int
    blocks: tuple[MlpConvSpec, ...]
    # The paper's models put a ReLU on the class-map layer too. Without it training
    # is easier to start (see ../shared/PAPER.md), but it is a different model.
    class_map_relu: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        blocks = tuple(MlpConvSpec(**{**b, "channels": tuple(b["channels"])}) for b in d["blocks"])
        return cls(**{**d, "blocks": blocks})


def global_average_pool(maps: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C): the spatial mean, for any H and W (paper, section 3.2)."""
    return maps.mean(dim=(2, 3))


def _pool_layer(kind: str | None) -> nn.Module:
    # Pooling 3x3 stride 2 as in the authors' layer files; padding 1 keeps H/2 exactly.
    if kind is None:
        return nn.Identity()
    if kind == "max":
        return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    if kind == "avg":
        return nn.AvgPool2d(kernel_size=3, stride=2, padding=1, count_include_pad=False)
    raise ValueError(f"unknown pooling {kind!r}: expected 'max', 'avg' or None")


class NIN(nn.Module):
    """Stacked mlpconv blocks; the last one outputs one confidence map per class.

    The head is only global average pooling, so `forward_maps` returns exactly the
    maps whose means are the class scores (logits; softmax lives in the loss).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.blocks[-1].channels[-1] != config.num_classes:
            raise ValueError("the last mlpconv layer must output num_classes maps")
        self.config = config
        widths = [config.in_channels] + [spec.channels[-1] for spec in config.blocks]
        last = len(config.blocks) - 1
        self.blocks = nn.ModuleList(
            MLPConv(widths[i], spec.channels, spec.kernel, final_relu=(i < last or config.class_map_relu))
            for i, spec in enumerate(config.blocks)
        )
        self.pools = nn.ModuleList(_pool_layer(spec.pool) for spec in config.blocks)
        self.dropouts = nn.ModuleList(nn.Dropout(spec.dropout) if spec.dropout else nn.Identity() for spec in config.blocks)

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> class confidence maps (B, num_classes, H', W')."""
        for block, pool, dropout in zip(self.blocks, self.pools, self.dropouts):
            x = dropout(pool(block(x)))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return global_average_pool(self.forward_maps(x))

    @property
    def class_map_layer(self) -> nn.Conv2d:
        """The last 1x1 convolution, whose outputs are the confidence maps."""
        return self.blocks[-1].convs[-1]

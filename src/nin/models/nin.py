"""The NIN network built from a declarative description (paper, section 3)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from nin.models.blocks import FCHead, MLPConv


@dataclass(frozen=True)
class MlpConvSpec:
    kernel: int
    channels: tuple[int, ...]     # first: k x k conv; the rest: 1x1 convs (none: a plain conv layer)
    pool: str | None = "max"      # pool_size x pool_size stride 2 pooling after the block, or None
    dropout: float = 0.0          # dropout on the block's (pooled) output
    pool_size: int = 3
    pieces: int = 1               # > 1: maxout units instead of ReLU (the maxout baseline)


@dataclass(frozen=True)
class ModelConfig:
    in_channels: int
    num_classes: int
    blocks: tuple[MlpConvSpec, ...]
    # The paper's models put a ReLU on the class-map layer too. Without it training
    # is easier to start (see ../shared/PAPER.md), but it is a different model.
    class_map_relu: bool = True
    # "gap": the last block's maps are the class maps, averaged (NIN). "fc": fully connected
    # layers on the flattened last block (the paper's comparisons); they fix the input size.
    head: str = "gap"
    fc_hidden: tuple[int, ...] = ()
    fc_dropout: float = 0.0
    fc_pieces: int = 1
    input_size: int = 32          # square training images; only the FC head depends on it

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        blocks = tuple(MlpConvSpec(**{**b, "channels": tuple(b["channels"])}) for b in d["blocks"])
        return cls(**{**d, "blocks": blocks, "fc_hidden": tuple(d.get("fc_hidden", ()))})

    def feature_size(self) -> int:
        """Side of the last block's maps for `input_size` inputs ('same' convolutions, stride-2 pools)."""
        size = self.input_size
        for spec in self.blocks:
            if spec.pool is not None:
                size = (size + 2 * ((spec.pool_size - 1) // 2) - spec.pool_size) // 2 + 1
        return size


def global_average_pool(maps: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C): the spatial mean, for any H and W (paper, section 3.2)."""
    return maps.mean(dim=(2, 3))


def _pool_layer(kind: str | None, size: int = 3) -> nn.Module:
    # Pooling 3x3 stride 2 as in the authors' layer files; padding 1 keeps H/2 exactly.
    if kind is None:
        return nn.Identity()
    if kind == "max":
        return nn.MaxPool2d(kernel_size=size, stride=2, padding=(size - 1) // 2)
    if kind == "avg":
        return nn.AvgPool2d(kernel_size=size, stride=2, padding=(size - 1) // 2, count_include_pad=False)
    raise ValueError(f"unknown pooling {kind!r}: expected 'max', 'avg' or None")


class NIN(nn.Module):
    """Stacked mlpconv blocks; the last one outputs one confidence map per class.

    The head is only global average pooling, so `forward_maps` returns exactly the
    maps whose means are the class scores (logits; softmax lives in the loss).
    The same class builds the paper's comparison models (`config.head == "fc"`,
    plain-convolution or maxout blocks); only GAP models have class maps.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.head not in ("gap", "fc"):
            raise ValueError(f"unknown head {config.head!r}: expected 'gap' or 'fc'")
        if config.head == "gap" and config.blocks[-1].channels[-1] != config.num_classes:
            raise ValueError("the last mlpconv layer must output num_classes maps")
        self.config = config
        widths = [config.in_channels] + [spec.channels[-1] for spec in config.blocks]
        last = len(config.blocks) - 1
        self.blocks = nn.ModuleList(
            MLPConv(widths[i], spec.channels, spec.kernel,
                    final_relu=(i < last or config.class_map_relu or config.head == "fc"), pieces=spec.pieces)
            for i, spec in enumerate(config.blocks)
        )
        self.pools = nn.ModuleList(_pool_layer(spec.pool, spec.pool_size) for spec in config.blocks)
        self.dropouts = nn.ModuleList(nn.Dropout(spec.dropout) if spec.dropout else nn.Identity()
                                      for spec in config.blocks)
        self.head = None
        if config.head == "fc":
            features = widths[-1] * config.feature_size() ** 2
            self.head = FCHead(features, config.fc_hidden, config.num_classes, config.fc_dropout, config.fc_pieces)

    @property
    def has_class_maps(self) -> bool:
        return self.head is None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for block, pool, dropout in zip(self.blocks, self.pools, self.dropouts):
            x = dropout(pool(block(x)))
        return x

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> class confidence maps (B, num_classes, H', W')."""
        if not self.has_class_maps:
            raise ValueError("a model with a fully connected head has no class confidence maps")
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head is not None:
            return self.head(self.features(x))
        return global_average_pool(self.features(x))

    @property
    def output_layer(self) -> nn.Module:
        """The layer that outputs the class scores: the class-map conv, or the FC head's last layer."""
        return self.head.out if self.head is not None else self.class_map_layer

    @property
    def class_map_layer(self) -> nn.Conv2d:
        """The last 1x1 convolution, whose outputs are the confidence maps."""
        if not self.has_class_maps:
            raise ValueError("a model with a fully connected head has no class confidence maps")
        return self.blocks[-1].convs[-1]

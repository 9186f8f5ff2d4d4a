"""The mlpconv block: a small MLP slid over the image (paper, section 3.1)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MLPConv(nn.Module):
    """A k x k convolution followed by 1x1 convolutions, ReLU after each.

    `channels[0]` is the k x k convolution's width, the rest are the 1x1 layers
    ("cascaded cross-channel parametric pooling"). Padding is 'same' (k // 2).
    `final_relu=False` drops the ReLU after the last layer only; it exists as an
    explicit model option because the paper's models all keep it.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...], kernel: int, final_relu: bool = True):
        super().__init__()
        widths = (in_channels, *channels)
        self.convs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], kernel_size=kernel if i == 0 else 1, padding=kernel // 2 if i == 0 else 0)
            for i in range(len(channels))
        )
        self.final_relu = final_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < last or self.final_relu:
                x = F.relu(x)
        return x

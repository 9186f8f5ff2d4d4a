"""The mlpconv block: a small MLP slid over the image (paper, section 3.1)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def maxout(x: torch.Tensor, pieces: int) -> torch.Tensor:
    """Maxout (Goodfellow et al. 2013): the max over each group of `pieces` consecutive channels/features."""
    if pieces == 1:
        return x
    b, c, *rest = x.shape
    return x.view(b, c // pieces, pieces, *rest).amax(dim=2)


class MLPConv(nn.Module):
    """A k x k convolution followed by 1x1 convolutions, ReLU after each.

    `channels[0]` is the k x k convolution's width, the rest are the 1x1 layers
    ("cascaded cross-channel parametric pooling"). Padding is 'same'. With no 1x1
    layers this is a plain convolution layer (the CNN baselines). `pieces` > 1 makes
    every layer a maxout layer instead (each unit the max of `pieces` linear maps;
    the maxout baseline). `final_relu=False` drops the ReLU after the last layer only;
    it exists as an explicit model option because the paper's models all keep it.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...], kernel: int, final_relu: bool = True,
                 pieces: int = 1):
        super().__init__()
        widths = (in_channels, *channels)
        # Odd kernels pad k // 2; even ones (the maxout nets' 8x8) need PyTorch's asymmetric 'same'.
        padding = kernel // 2 if kernel % 2 else "same"
        self.convs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1] * pieces, kernel_size=kernel if i == 0 else 1,
                      padding=padding if i == 0 else 0)
            for i in range(len(channels))
        )
        self.final_relu = final_relu
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            if self.pieces > 1:
                x = maxout(conv(x), self.pieces)
            elif i < last or self.final_relu:
                x = F.relu(conv(x))
            else:
                x = conv(x)
        return x


class FCHead(nn.Module):
    """Flatten, then fully connected layers (ReLU or maxout between), ending in class scores.

    `dropout` is applied before every fully connected layer (the paper's "fully connected + dropout").
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int, dropout: float = 0.0,
                 pieces: int = 1):
        super().__init__()
        widths = (in_features, *hidden)
        self.hidden = nn.ModuleList(nn.Linear(widths[i], widths[i + 1] * pieces) for i in range(len(hidden)))
        self.out = nn.Linear(widths[-1], num_classes)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = layer(self.dropout(x))
            x = maxout(x, self.pieces) if self.pieces > 1 else F.relu(x)
        return self.out(self.dropout(x))

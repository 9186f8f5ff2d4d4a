"""The CPU fast path, opt-in: `optimize(model)` makes a built model's mlpconv blocks run conv + ReLU fused in
oneDNN and its dropout draw bit masks, without changing its parameters, their names or its numbers.

Training, the benchmarks and loaded weights apply it; nin.models stays plain torch.nn. tests/test_fast_ops.py
holds the optimized model equal to the plain one in outputs and gradients.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn import functional as F

from nin.models.blocks import MLPConv


def optimize(model: nn.Module) -> nn.Module:
    """`model`, its MLPConv blocks and dropout layers switched in place to the fast versions (same state)."""
    for module in model.modules():
        if type(module) is MLPConv:
            module.__class__ = FusedMLPConv
        elif type(module) is nn.Dropout:
            module.__class__ = BitMaskDropout
    return model


_BIT_SHIFTS = torch.arange(8, dtype=torch.uint8)


def _laid_out_as(flat: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`flat` (numel entries, in memory order) as a tensor shaped and laid out as `like`."""
    if like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last):
        b, c, h, w = like.shape
        return flat.view(b, h, w, c).permute(0, 3, 1, 2)
    return flat.view(like.shape)


def half_dropout_mask(like: torch.Tensor) -> torch.Tensor:
    """A uint8 tensor shaped and laid out as `like`: 0 or 2, each with probability 1/2, independently.

    Built from random bytes, 8 mask entries per byte: 15x faster on the CPU (measured) than
    `bernoulli_`, which draws one random number per entry and was 10% of a training step.
    """
    return _laid_out_as(_random_fields(like.numel(), 1, like.device) << 1, like)


def _random_fields(n: int, bits: int, device) -> torch.Tensor:
    """n independent uniform integers in [0, 2**bits), cut from 8 // bits fields of each random byte."""
    per_byte = 8 // bits
    shifts = _BIT_SHIFTS[::bits].to(device)
    noise = torch.randint(0, 256, ((n + per_byte - 1) // per_byte, 1), dtype=torch.uint8, device=device)
    return ((noise >> shifts) & (2 ** bits - 1)).view(-1)[:n]


def dyadic_dropout_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """A bool tensor shaped and laid out as `like`: False (dropped) with probability p, which must be
    m / 2**k for k <= 8 (0.25 is 1/4): each entry compares a k-bit field of random bytes with m,
    so 0.25 takes 2 bits an entry (4 entries a byte) and no float draws."""
    for bits in (1, 2, 4, 8):
        cut = p * 2 ** bits
        if 0 < cut < 2 ** bits and cut == int(cut):
            return _laid_out_as(_random_fields(like.numel(), bits, like.device) >= int(cut), like)
    raise ValueError(f"a bit mask needs p in (0, 1) as a multiple of 1/256, got {p}")


class BitMaskDropout(nn.Dropout):
    """nn.Dropout with masks made from random bits in training: p = 0.5 (every dropout in the paper's
    models) outputs x * 2 or 0 in one multiplication; other rates m / 2**k, such as the 0.25 of the
    CPU recipe, use `dyadic_dropout_mask`; any other rate falls back to nn.Dropout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.inplace or self.p == 0:
            return super().forward(x)
        if self.p == 0.5:
            return x * half_dropout_mask(x)
        if 256 * self.p == int(256 * self.p):
            return (x * dyadic_dropout_mask(x, self.p)).mul_(1 / (1 - self.p))
        return super().forward(x)


class _ConvReLU(torch.autograd.Function):
    """relu(conv2d(x)) with the ReLU done inside oneDNN's convolution (a post-op): one pass over
    the output instead of two. Backward: the ReLU's mask from the saved output, then the
    convolution's own backward. The unfused pair's numbers, bit for bit, wherever PyTorch runs that
    convolution in oneDNN too (16 images or more; 2 or more on several threads); for fewer its 1x1
    convolutions use another matrix product, and the two differ by float rounding."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        out = torch.ops.mkldnn._convolution_pointwise(x, weight, bias, padding, [1, 1], [1, 1], 1, "relu", [], None)
        ctx.save_for_backward(x, weight, out)
        ctx.padding = padding
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, out = ctx.saved_tensors
        grad = torch.ops.aten.threshold_backward(grad, out, 0)
        grads = torch.ops.aten.convolution_backward(grad, x, weight, [weight.shape[0]], [1, 1], ctx.padding, [1, 1],
                                                    False, [0, 0], 1, list(ctx.needs_input_grad[:3]))
        return *grads, None


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a CPU convolution runs in here: autocast's where it is on, else the input's."""
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype


def _can_fuse(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Fuse on the CPU in eager mode only, in fp32 or (where oneDNN has it) bf16, and never where a hook wants
    the convolution's own output (LSUV init, `nin summary`) or a tracer wants standard ops (torch.compile, ONNX
    export)."""
    return (x.device.type == "cpu" and torch.backends.mkldnn.is_available() and x.dim() == 4
            and isinstance(conv.padding, tuple) and conv.stride == (1, 1) and conv.dilation == (1, 1)
            and conv.groups == 1 and conv.bias is not None
            and not (conv._forward_hooks or conv._forward_pre_hooks)
            and not (torch.compiler.is_compiling() or torch.jit.is_scripting() or torch.jit.is_tracing())
            and _compute_dtype(x) in _fusable_dtypes())


@functools.cache
def _fusable_dtypes() -> tuple[torch.dtype, ...]:
    """oneDNN's bf16 convolution needs AVX-512 or AVX-NE-CONVERT; elsewhere (AVX2-only CPUs) it raises, while
    PyTorch's own bf16 convolution still runs, so bf16 is fused only where oneDNN supports it."""
    return (torch.float32, torch.bfloat16) if torch.ops.mkldnn._is_mkldnn_bf16_supported() else (torch.float32,)


def conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """relu(conv(x)), fused where `_can_fuse` allows; under autocast, in its dtype as autocast would."""
    if not _can_fuse(conv, x):
        return F.relu(conv(x))
    dtype = _compute_dtype(x)
    return _ConvReLU.apply(x.to(dtype), conv.weight.to(dtype), conv.bias.to(dtype), list(conv.padding))


class FusedMLPConv(MLPConv):
    """MLPConv whose ReLU layers run inside their convolutions where `_can_fuse` allows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pieces > 1:   # maxout blocks have no ReLU to fuse
            return super().forward(x)
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            x = conv_relu(conv, x) if i < last or self.final_relu else conv(x)
        return x

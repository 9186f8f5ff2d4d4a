"""Where a training step of the CIFAR recipe spends its time, op by op, and this machine's memory bandwidth.

    python benchmarks/step_profile.py [--size 32] [--dropout 0.25] [--steps 3] [--rows 15]

The step is `nin.train.loop.training_step`, the one `nin train` runs, with the fast recipe's options
(nin-cifar10, batch 128, bf16 autocast where the CPU has it, channels-last, label smoothing and gradient
clipping), under torch.profiler, grouped by op and input shape, slowest first.
The last line is the speed of a plain copy of one 128 x 192 x 32 x 32 bf16 activation: the
elementwise ops (the ReLU's backward, dropout, pooling) can go no faster than that. Run it with the
cores otherwise idle: a second process on them stalls oneDNN's threads and inflates the largest ops.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from nin.bench import matmul_peak
from nin.fast import optimize
from nin.models.nin import NIN
from nin.models.registry import preset_config, with_dropout
from nin.provenance import machine
from nin.recipe import FAST
from nin.train.allocator import keep_freed_memory
from nin.train.device import autocast, use_bf16
from nin.train.loop import StepOptions, training_step
from nin.train.recipes import make_optimizer


def copy_gb_per_s(repeats: int = 10) -> float:
    """Bytes read plus written per second by a copy of one 128 x 192 x 32 x 32 bf16 tensor (50 MB)."""
    x = torch.empty(128, 192, 32, 32, dtype=torch.bfloat16).normal_()
    x.clone()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        x.clone()
        best = min(best, time.perf_counter() - start)
    return 2 * x.numel() * x.element_size() / best / 1e9


FORWARD_CONV, BACKWARD_CONV = "mkldnn::_convolution_pointwise", "aten::convolution_backward"
PLAIN_CONV = "aten::mkldnn_convolution"   # a convolution that the fast path did not fuse (the class-map layer)


def layer_table(events, steps: int, step_seconds: float, peak_gflops: float, in_channels: int) -> str:
    """Per convolution layer (told apart by its input shapes): forward and backward ms a step and their GFLOP/s
    against the matmul peak; then what the rest of the step (pooling, dropout, the ReLU's masks, the optimizer)
    takes, and the share of the peak the step would reach if every convolution ran at the peak."""
    layers: dict[tuple, dict] = {}
    for event in events:
        shapes = event.input_shapes
        if event.key in (FORWARD_CONV, PLAIN_CONV) and len(shapes) > 1 and len(shapes[1]) == 4:
            x, w, part = shapes[0], shapes[1], "forward"
        elif event.key == BACKWARD_CONV and len(shapes) > 2 and len(shapes[2]) == 4:
            x, w, part = shapes[1], shapes[2], "backward"
        else:
            continue
        layer = layers.setdefault((tuple(x), tuple(w)), {"forward": 0.0, "backward": 0.0, "calls": 0.0})
        layer[part] += event.self_cpu_time_total / 1e6 / steps
        layer["calls"] += event.count / steps if part == "forward" else 0   # layers of the same shapes share a row
    lines = ["layer                          forward ms  backward ms   GFLOP   GFLOP/s   share of the peak"]
    conv_seconds = conv_flops = 0.0
    for (x, w), t in sorted(layers.items(), key=lambda item: -item[0][0][2]):
        forward_flops = 2 * x[0] * w[0] * w[1] * w[2] * w[3] * x[2] * x[3]
        flops = forward_flops * (2 if w[1] == in_channels else 3) * t["calls"]   # the first needs no input gradient
        seconds = t["forward"] + t["backward"]
        conv_seconds, conv_flops = conv_seconds + seconds, conv_flops + flops
        lines.append(f"{w[1]:4d} -> {w[0]:<4d} {w[2]}x{w[3]} at {x[2]:2d} x {x[3]:<2d} x{t['calls']:g}  {1e3 * t['forward']:8.1f} "
                     f"{1e3 * t['backward']:12.1f} {flops / 1e9:7.1f} {flops / seconds / 1e9:9.0f}   "
                     f"{100 * flops / seconds / 1e9 / peak_gflops:6.1f}%")
    rest = step_seconds - conv_seconds
    lines.append(f"convolutions: {1e3 * conv_seconds:.0f} ms of the {1e3 * step_seconds:.0f} ms step, "
                 f"{100 * conv_flops / conv_seconds / 1e9 / peak_gflops:.1f}% of the peak; the rest {1e3 * rest:.0f} ms. "
                 f"All convolutions at the peak would make the step "
                 f"{100 * conv_flops / (conv_flops / peak_gflops / 1e9 + rest) / 1e9 / peak_gflops:.1f}% of it.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=32, help="side of the training crops (24: --small-crop-epochs)")
    parser.add_argument("--dropout", type=float, default=0.25, help="the recipe's dropout (cifar10-aug: 0.25)")
    parser.add_argument("--steps", type=int, default=3, help="profiled steps, after 3 of warm-up")
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args()

    keep_freed_memory()   # as nin train does
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    model = optimize(NIN(with_dropout(preset_config("nin-cifar10"), args.dropout))).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, FAST, lr=1e-3)
    x = torch.randn(128, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,))
    # The loop's own step with the recipe's options; the batch is already prepared, so prepare is the identity.
    options = StepOptions.for_recipe(FAST, lambda images: images, autocast(cpu, use_bf16(cpu, "auto")), cpu)

    def step():
        training_step(model, optimizer, x, y, options)

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - start) / args.steps
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(args.steps):
            step()
    print(f"{machine()}; nin-cifar10 at {args.size} x {args.size}, dropout {args.dropout}, batch 128: "
          f"{seconds * 1000:.0f} ms a step ({128 / seconds:.0f} img/s) without the profiler")
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=args.rows,
                                                            max_name_column_width=32, max_shapes_column_width=70))
    precision = torch.bfloat16 if use_bf16(cpu, "auto") else torch.float32
    peak = matmul_peak(precision)
    print(f"\nper layer, a step (the profiler's times: they add its overhead), against the {precision} matmul peak "
          f"of {peak:.0f} GFLOP/s:")
    profiled = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e6 / args.steps
    print(layer_table(prof.key_averages(group_by_input_shape=True), args.steps, profiled, peak, 3))
    print(f"plain copy of a 50 MB bf16 activation: {copy_gb_per_s():.1f} GB/s read + written")


if __name__ == "__main__":
    main()

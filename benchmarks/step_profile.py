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
    print(f"plain copy of a 50 MB bf16 activation: {copy_gb_per_s():.1f} GB/s read + written")


if __name__ == "__main__":
    main()

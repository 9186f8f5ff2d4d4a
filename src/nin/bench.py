"""`nin bench`: this machine's matmul peak, and the project's training and inference speed against it
and against the same model written the plain way, all measured in one process as ratios.

Rounds alternate between the variants and each keeps its best round, so a noisy, shared machine
slows both sides alike instead of biasing one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from nin.data.augment import make_augment
from nin.data.batches import iterate_batches, make_prepare, shuffle_order
from nin.data.registry import MEASURED_WHEN_LOADED, dataset_info
from nin.fast import optimize
from nin.models.nin import NIN
from nin.models.registry import preset_config, with_dropout
from nin.models.summary import forward_macs
from nin.provenance import commit, machine, machine_kind, peak_memory_bytes
from nin.recipe import FAST
from nin.train.allocator import keep_freed_memory
from nin.train.device import autocast, resolve_device, use_bf16
from nin.train.loop import StepOptions, train_one_epoch
from nin.train.recipes import make_optimizer


def plain_model(model: NIN) -> nn.Sequential:
    """The same network as most public NIN code writes it: nn.Sequential, ReLU modules, fp32 NCHW.

    Shares no memory with `model` but copies its weights, so the two give the same outputs.
    """
    if not model.has_class_maps:
        raise ValueError("the plain comparison is written for GAP models")
    layers: list[nn.Module] = []
    for block, pool, dropout in zip(model.blocks, model.pools, model.dropouts):
        for j, conv in enumerate(block.convs):
            copy = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding)
            copy.load_state_dict(conv.state_dict())
            layers.append(copy)
            if j < len(block.convs) - 1 or block.final_relu:
                layers.append(nn.ReLU(inplace=True))
        if not isinstance(pool, nn.Identity):
            layers.append(nn.MaxPool2d(pool.kernel_size, pool.stride, pool.padding))
        if not isinstance(dropout, nn.Identity):
            layers.append(nn.Dropout(dropout.p))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


PEAK_SIZE = 2048   # the side of the matrices whose product measures the peak


def _matmul(dtype: torch.dtype, size: int = PEAK_SIZE) -> Callable[[], None]:
    """One size x size matrix product in `dtype` on the CPU threads torch uses."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    return lambda: torch.matmul(a, b)


def _matmul_gflops(seconds: float, size: int = PEAK_SIZE) -> float:
    return 2 * size ** 3 / seconds / 1e9


def matmul_peak(dtype: torch.dtype, size: int = PEAK_SIZE, repeats: int = 5) -> float:
    """Best GFLOP/s of a size x size matrix product in `dtype` (after one warm-up product)."""
    return _matmul_gflops(_best_seconds({"matmul": _matmul(dtype, size)}, repeats, 1)["matmul"], size)


def _best_seconds(runs: dict[str, Callable[[], None]], rounds: int, steps: int) -> dict[str, float]:
    """Seconds per call of each function: the best round of `steps` calls; rounds alternate the functions."""
    best = {name: float("inf") for name in runs}
    for fn in runs.values():   # warm-up
        fn()
    for _ in range(rounds):
        for name, fn in runs.items():
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / steps)
    return best


def _train_step(model, optimizer, x, y, amp) -> Callable[[], None]:
    def step():
        with amp:
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def _infer(model, x, amp) -> Callable[[], None]:
    @torch.no_grad()
    def run():
        with amp:
            model(x)
    return run


@dataclass(frozen=True)
class BenchConfig:
    preset: str = "nin-cifar10"
    batch_size: int = 128
    rounds: int = 3
    steps: int = 4
    epoch_batches: int = 20
    device: str = "auto"
    dropout: float | None = None   # a recipe's --dropout (None: the preset's 0.5, which has a fast mask)
    small_crop_size: int = 24      # the epoch loop once more on crops of this side (--small-crop-epochs)


def run_bench(cfg: BenchConfig, log=print) -> dict:
    keep_freed_memory()   # as `nin train` does once its data are loaded
    device = resolve_device(cfg.device)
    torch.manual_seed(0)
    config = preset_config(cfg.preset)
    model = optimize(NIN(config if cfg.dropout is None else with_dropout(config, cfg.dropout)))
    c, size = model.config.in_channels, model.config.input_size
    macs = forward_macs(model, (c, size, size))
    bf16 = use_bf16(device, "auto")
    log(f"{cfg.preset}, batch {cfg.batch_size}, {device}, {torch.get_num_threads()} threads, "
        f"{'bf16' if bf16 else 'fp32'} + channels-last; {macs / 1e6:.1f} M MACs per image")

    fast = model.to(device, memory_format=torch.channels_last)
    fast_opt = make_optimizer(fast, FAST, lr=1e-3)
    train_ips, infer_ips, peaks = _steps_against_plain(cfg, fast, fast_opt, device, bf16)
    log("matmul peak: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))
    loops_ips = _epoch_loops(cfg, fast, fast_opt, device, bf16)
    return _figures(cfg, device, bf16, macs, peaks, train_ips, infer_ips, loops_ips)


def _steps_against_plain(cfg: BenchConfig, fast: NIN, fast_opt, device, bf16: bool) -> tuple[dict, dict, dict]:
    """Images/s of the training step and of inference, ours ("fast") against a plain PyTorch NIN ("plain"), and
    the matmul peaks in GFLOP/s. The peaks are timed in the same rounds as the training steps: a machine whose
    speed drifts (shared cores, clocks) moves both, where a peak taken once before would skew their ratio."""
    c, size = fast.config.in_channels, fast.config.input_size
    plain = plain_model(fast).to(device)
    x = torch.randn(cfg.batch_size, c, size, size, device=device)
    y = torch.randint(0, fast.config.num_classes, (cfg.batch_size,), device=device)
    x_fast = x.contiguous(memory_format=torch.channels_last)
    amp, no_amp = autocast(device, bf16), autocast(device, False)
    plain_opt = torch.optim.SGD(plain.parameters(), lr=1e-3, momentum=FAST.momentum, weight_decay=FAST.weight_decay)
    fast.train(), plain.train()
    products = {"fp32": _matmul(torch.float32)}
    if bf16 or device.type == "cuda":
        products["bf16"] = _matmul(torch.bfloat16)
    train = _best_seconds({"fast": _train_step(fast, fast_opt, x_fast, y, amp),
                           "plain": _train_step(plain, plain_opt, x, y, no_amp), **products}, cfg.rounds, cfg.steps)
    peaks = {dtype: _matmul_gflops(train.pop(dtype)) for dtype in products}
    fast.eval(), plain.eval()
    infer = _best_seconds({"fast": _infer(fast, x_fast, amp), "plain": _infer(plain, x, no_amp)},
                          cfg.rounds, cfg.steps * 2)
    return ({k: cfg.batch_size / v for k, v in train.items()}, {k: cfg.batch_size / v for k, v in infer.items()}, peaks)


def _epoch_loops(cfg: BenchConfig, fast: NIN, fast_opt, device, bf16: bool) -> dict:
    """Images/s of nin train's epoch loop (uint8 batches, normalisation, augmentation, step, metrics), at full size
    ("full") and on a recipe's small crops ("small"), on synthetic images of the data set's size."""
    c, size = fast.config.in_channels, fast.config.input_size
    info = dataset_info("cifar10" if c == 3 else "mnist")
    n = cfg.epoch_batches * cfg.batch_size
    images = torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8)
    labels = torch.randint(0, fast.config.num_classes, (n,))
    measured = info.mean == MEASURED_WHEN_LOADED   # CIFAR's statistics come from its images: stand-ins here
    prepare = make_prepare((0.5,) * c if measured else info.mean, (0.25,) * c if measured else info.std, device,
                           channels_last=True)
    amp = autocast(device, bf16)
    # The fast recipe's step as `nin train` runs it: augmentation, label smoothing, gradient clipping.
    steps = {"full": StepOptions.for_recipe(FAST, prepare, amp, device,
                                            make_augment(info.augment_shift, info.augment_flip)),
             "small": StepOptions.for_recipe(FAST, prepare, amp, device,
                                             make_augment(0, info.augment_flip, crop=cfg.small_crop_size))}
    fast.train()
    best = {"full": float("inf"), "small": float("inf")}
    for _ in range(2):
        for kind, options in steps.items():
            batches = iterate_batches(images, labels, cfg.batch_size, shuffle_order(n, 0, 0), drop_last=True)
            stats = train_one_epoch(fast, batches, cfg.epoch_batches, fast_opt, lambda i: 1e-3, options, 0)
            best[kind] = min(best[kind], stats.seconds)
    return {kind: n / seconds for kind, seconds in best.items()}


def _figures(cfg: BenchConfig, device, bf16: bool, macs: int, peaks: dict, train_ips: dict, infer_ips: dict,
             loops_ips: dict) -> dict:
    peak_key = "bf16" if "bf16" in peaks else "fp32"
    flops_per_image = 6 * macs   # forward + backward: 3 passes, 2 FLOPs per multiply-accumulate
    end_to_end_ips, small_crop_ips = loops_ips["full"], loops_ips["small"]
    return {
        "preset": cfg.preset, "dropout": cfg.dropout if cfg.dropout is not None else "preset",
        "batch_size": cfg.batch_size, "device": str(device), "threads": torch.get_num_threads(),
        "precision": "bf16" if bf16 else "fp32", "forward_macs_per_image": macs,
        "peak_gflops_fp32": round(peaks["fp32"], 1), "peak_gflops_bf16": round(peaks.get("bf16", 0.0), 1),
        "train_images_per_s": round(train_ips["fast"], 1), "plain_train_images_per_s": round(train_ips["plain"], 1),
        "infer_images_per_s": round(infer_ips["fast"], 1), "plain_infer_images_per_s": round(infer_ips["plain"], 1),
        "train_gflops": round(train_ips["fast"] * flops_per_image / 1e9, 1),
        "train_mfu": round(train_ips["fast"] * flops_per_image / 1e9 / peaks[peak_key], 4),
        "mfu_peak": peak_key,
        "plain_train_mfu_fp32": round(train_ips["plain"] * flops_per_image / 1e9 / peaks["fp32"], 4),
        "train_speedup_vs_plain": round(train_ips["fast"] / train_ips["plain"], 3),
        "infer_speedup_vs_plain": round(infer_ips["fast"] / infer_ips["plain"], 3),
        # The most any dense implementation could reach here: the whole step at the matmul peak.
        "train_speedup_ceiling": round(peaks[peak_key] * 1e9 / flops_per_image / train_ips["plain"], 3),
        "infer_speedup_ceiling": round(peaks[peak_key] * 1e9 / (2 * macs) / infer_ips["plain"], 3),
        "end_to_end_images_per_s": round(end_to_end_ips, 1),
        "end_to_end_fraction": round(end_to_end_ips / train_ips["fast"], 4),
        "small_crop_size": cfg.small_crop_size, "small_crop_images_per_s": round(small_crop_ips, 1),
        "small_crop_speedup": round(small_crop_ips / end_to_end_ips, 3),
        "peak_rss_gb": round(peak_memory_bytes() / 1e9, 3),
        # Where the figures come from: they differ by machine (this project's have ranged 1.5x).
        "machine": machine(), "commit": commit(), "date": time.strftime("%Y-%m-%d"),
    }


def format_bench(r: dict) -> str:
    rows = [
        ("matmul peak fp32", f"{r['peak_gflops_fp32']:.0f} GFLOP/s", ""),
        ("matmul peak bf16", f"{r['peak_gflops_bf16']:.0f} GFLOP/s", ""),
        ("train step (nin)", f"{r['train_images_per_s']:.0f} img/s",
         f"{r['train_gflops']:.0f} GFLOP/s = {100 * r['train_mfu']:.1f}% of the {r['mfu_peak']} peak"),
        ("train step (plain fp32)", f"{r['plain_train_images_per_s']:.0f} img/s",
         f"{100 * r['plain_train_mfu_fp32']:.1f}% of the fp32 peak; nin is {r['train_speedup_vs_plain']:.2f}x "
         f"(at most {r['train_speedup_ceiling']:.2f}x at 100% of the {r['mfu_peak']} peak)"),
        ("inference (nin)", f"{r['infer_images_per_s']:.0f} img/s", ""),
        ("inference (plain fp32)", f"{r['plain_infer_images_per_s']:.0f} img/s",
         f"nin is {r['infer_speedup_vs_plain']:.2f}x "
         f"(at most {r['infer_speedup_ceiling']:.2f}x at 100% of the {r['mfu_peak']} peak)"),
        ("nin train epoch loop", f"{r['end_to_end_images_per_s']:.0f} img/s",
         f"{100 * r['end_to_end_fraction']:.1f}% of the pure step"),
        ("peak resident memory", f"{r['peak_rss_gb']:.2f} GB", ""),
    ]
    if "small_crop_images_per_s" in r:   # records before the small-crop loop was measured lack it
        side = r["small_crop_size"]
        rows.insert(-1, (f"  on {side} x {side} crops", f"{r['small_crop_images_per_s']:.0f} img/s",
                         f"{r['small_crop_speedup']:.2f}x the full-size loop (--small-crop-epochs)"))
    return "\n".join(f"{a:<26} {b:>16}   {c}" for a, b, c in rows)


BENCH_DIR = "bench"   # in results/: one `nin bench --json` record per preset and machine kind


def record_name(record: dict) -> str:
    """results/bench/PRESET-KIND.json: one record per preset and machine kind (a new run replaces its kind's)."""
    return f"{record['preset']}-{machine_kind(record['machine'])}.json"

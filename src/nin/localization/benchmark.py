"""The localisation benchmark: train NIN on translated digits with labels only, then locate them.

Three locators are scored the same way (fraction of test canvases whose box has IoU >= 0.5
with the true box): the predicted class's confidence map (CAM), the gradient saliency of the
same model, and a centred box of the mean true size (no information at all). The heat-map
threshold of each locator is chosen on validation canvases (made from MNIST training digits),
never on the test canvases. The true class's map is scored too, as a diagnosis: the gap between
it and the CAM is what classification mistakes cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nin.data.batches import iterate_batches, make_prepare, shuffle_order
from nin.data.registry import dataset_info
from nin.data.datasets import load_dataset
from nin.errors import NinError
from nin.fast import optimize
from nin.inference import load_trained
from nin.localization.boxes import centred_box, gradient_saliency, iou
from nin.localization.canvas import Canvases, make_canvases
from nin.maps.confidence import class_maps, upsample
from nin.maps.locate import box_from_heatmap
from nin.models.registry import build_model
from nin.provenance import commit, machine
from nin.recipe import FAST
from nin.train.device import autocast, resolve_device, use_bf16
from nin.train.loop import EpochControl, StepOptions, train_one_epoch
from nin.train.recipes import initialize_, make_optimizer
from nin.train.schedule import one_cycle_lr

IOU_HIT = 0.5
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)   # fractions of a heat map's maximum


@dataclass(frozen=True)
class LocalizeConfig:
    data_dir: Path | None = None
    offline: bool = False
    train_count: int = 20_000
    val_count: int = 1_000
    test_count: int = 2_000
    size: int = 64
    clutter: int = 4
    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.2
    thresholds: tuple[float, ...] = THRESHOLDS
    init_weights: str | None = "nin-mnist"   # a shipped model's name or a weights file to start from; None: scratch
    seed: int = 0
    device: str = "auto"
    progress: bool = True


def starting_model(cfg: LocalizeConfig, sample: torch.Tensor, device: torch.device):
    """(nin-mnist to train, its input standardisation): fresh with LSUV, or the weights named."""
    info = dataset_info("mnist")
    if cfg.init_weights is None:
        model = optimize(build_model("nin-mnist")).to(device, memory_format=torch.channels_last)
        prepare = make_prepare(info.mean, info.std, device, channels_last=True)
        initialize_(model, "lsuv", sample=prepare(sample.to(device)))
        return model, prepare
    trained = load_trained(cfg.init_weights)
    config = trained.model.config
    if (config.in_channels, config.num_classes, trained.meta.get("preprocess", "none")) != (1, 10, "none") \
            or not trained.model.has_class_maps:
        raise NinError(f"--init-weights {cfg.init_weights}: expected a GAP model of 1-channel images and 10 "
                       "classes without preprocessing (nin-mnist, nin-fashion-mnist or a run of them)")
    prepare = make_prepare(tuple(trained.meta["mean"]), tuple(trained.meta["std"]), device, channels_last=True)
    return trained.model.to(device, memory_format=torch.channels_last), prepare


def train_on_canvases(cfg: LocalizeConfig, train: Canvases, device: torch.device, log=print):
    """nin-mnist with the fast recipe (labels only: the boxes are never seen)."""
    torch.manual_seed(cfg.seed)
    images, labels = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    model, prepare = starting_model(cfg, images[:256], device)
    optimizer = make_optimizer(model, FAST, cfg.lr)
    step = StepOptions.for_recipe(FAST, prepare, autocast(device, use_bf16(device, "auto")), device)
    steps = len(labels) // cfg.batch_size
    total = cfg.epochs * steps
    for epoch in range(cfg.epochs):
        order = shuffle_order(len(labels), cfg.seed, epoch)
        stats = train_one_epoch(model, iterate_batches(images, labels, cfg.batch_size, order, drop_last=True), steps,
                                optimizer, lambda i, first=epoch * steps: one_cycle_lr(first + i, total, cfg.lr,
                                                                                       total // 10),
                                step, epoch, EpochControl(progress=cfg.progress))
        log(f"epoch {epoch + 1}/{cfg.epochs}: train loss {stats.loss:.4f} acc {stats.accuracy:.2f}% "
            f"({stats.images_per_second:.0f} img/s)")
    return model.eval(), prepare


@dataclass(frozen=True)
class Heatmaps:
    predicted: np.ndarray    # (N,) the model's classes
    cam: np.ndarray          # (N, H, W) the predicted class's map, upsampled to the canvas
    true_cam: np.ndarray     # (N, H, W) the true class's map (the diagnosis)
    saliency: np.ndarray     # (N, H, W) gradient saliency of the predicted class
    map_size: tuple[int, int]


def heatmaps(model, prepare, canvases: Canvases, device: torch.device, batch_size: int = 250) -> Heatmaps:
    size = canvases.images.shape[-2:]
    parts = {"predicted": [], "cam": [], "true_cam": [], "saliency": []}
    for start in range(0, len(canvases.labels), batch_size):
        x = prepare(torch.from_numpy(canvases.images[start:start + batch_size]).to(device))
        truth = torch.from_numpy(canvases.labels[start:start + batch_size]).to(device)
        maps, logits = class_maps(model, x)
        pred = logits.argmax(dim=1)
        rows = torch.arange(len(pred), device=device)
        big = upsample(maps, size)
        parts["predicted"].append(pred.cpu().numpy())
        parts["cam"].append(big[rows, pred].cpu().numpy())
        parts["true_cam"].append(big[rows, truth].cpu().numpy())
        parts["saliency"].append(gradient_saliency(model, x, pred).float().cpu().numpy())
    return Heatmaps(**{k: np.concatenate(v) for k, v in parts.items()}, map_size=tuple(maps.shape[-2:]))


def score(boxes: list, truth: np.ndarray, mask: np.ndarray | None = None) -> dict:
    ious = np.array([iou(b, t) for b, t in zip(boxes, truth)])
    if mask is not None:
        ious = ious[mask]
    return {"hit_rate": float((ious >= IOU_HIT).mean()), "mean_iou": float(ious.mean()), "count": int(len(ious))}


def boxes_at(heat: np.ndarray, threshold: float) -> list:
    return [box_from_heatmap(h, threshold) for h in heat]


def choose_thresholds(val: Heatmaps, canvases: Canvases, thresholds) -> tuple[dict, dict]:
    """({locator: best threshold}, {locator: {threshold: hit rate}}) on validation canvases."""
    sweep = {name: {t: score(boxes_at(getattr(val, name), t), canvases.boxes)["hit_rate"] for t in thresholds}
             for name in ("cam", "saliency")}
    best = {name: max(rates, key=lambda t: (rates[t], -t)) for name, rates in sweep.items()}   # ties: the lower
    return best, sweep


def run_benchmark(cfg: LocalizeConfig, log=print) -> dict:
    if not all(0 < t <= 1 for t in cfg.thresholds) or not cfg.thresholds:
        raise NinError(f"--thresholds {' '.join(map(str, cfg.thresholds))}: expected fractions in (0, 1]")
    if min(cfg.train_count, cfg.val_count, cfg.test_count, cfg.epochs) < 1:
        raise NinError("--train-count, --val-count, --test-count and --epochs must each be at least 1")
    start = time.perf_counter()
    device = resolve_device(cfg.device)
    mnist = load_dataset("mnist", cfg.data_dir, cfg.offline)
    digits, digit_labels = mnist.train.images.numpy(), mnist.train.labels.numpy()
    train = make_canvases(digits, digit_labels, cfg.train_count, cfg.size, cfg.clutter, seed=cfg.seed)
    val = make_canvases(digits, digit_labels, cfg.val_count, cfg.size, cfg.clutter, seed=cfg.seed + 2)
    test = make_canvases(mnist.test.images.numpy(), mnist.test.labels.numpy(), cfg.test_count, cfg.size,
                         cfg.clutter, seed=cfg.seed + 1)
    log(f"{cfg.train_count} training, {cfg.val_count} validation and {cfg.test_count} test canvases of "
        f"{cfg.size}x{cfg.size}, {cfg.clutter} clutter fragments each")
    model, prepare = train_on_canvases(cfg, train, device, log)
    train_seconds = time.perf_counter() - start
    val_maps = heatmaps(model, prepare, val, device)
    chosen, sweep = choose_thresholds(val_maps, val, cfg.thresholds)
    log(f"thresholds chosen on the validation canvases: {chosen}")
    test_maps = heatmaps(model, prepare, test, device)
    # The centred baseline knows the mean true box size of the training canvases, nothing else.
    widths, heights = train.boxes[:, 2] - train.boxes[:, 0], train.boxes[:, 3] - train.boxes[:, 1]
    boxes = {"cam": boxes_at(test_maps.cam, chosen["cam"]),
             "saliency": boxes_at(test_maps.saliency, chosen["saliency"]),
             "centred": [centred_box(cfg.size, cfg.size, float(heights.mean()), float(widths.mean()))] * len(test.labels)}
    correct = test_maps.predicted == test.labels
    return {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        "test_accuracy": float(correct.mean() * 100),
        "validation_accuracy": float((val_maps.predicted == val.labels).mean() * 100),
        "map_size": list(test_maps.map_size),
        "iou_threshold": IOU_HIT,
        "chosen_thresholds": chosen,
        "validation_sweep": {name: {f"{t:g}": r for t, r in rates.items()} for name, rates in sweep.items()},
        "locators": {name: {"all": score(b, test.boxes), "correctly_classified": score(b, test.boxes, correct)}
                     for name, b in boxes.items()},
        "diagnosis": {"true_class_map": score(boxes_at(test_maps.true_cam, chosen["cam"]), test.boxes)},
        "train_seconds": round(train_seconds, 1),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "commit": commit(), "machine": machine(),
    }


def format_results(results: dict) -> str:
    lines = [f"test classification accuracy {results['test_accuracy']:.2f}% "
             f"(validation {results['validation_accuracy']:.2f}%); maps {results['map_size'][0]}x{results['map_size'][1]}",
             f"{'locator':<10} {'threshold':>9} {'IoU>=0.5 (all)':>15} {'mean IoU':>9} {'IoU>=0.5 (correct)':>19}"]
    for name, r in results["locators"].items():
        threshold = results["chosen_thresholds"].get(name)
        lines.append(f"{name:<10} {'-' if threshold is None else f'{threshold:g}':>9} "
                     f"{100 * r['all']['hit_rate']:14.2f}% {r['all']['mean_iou']:9.3f} "
                     f"{100 * r['correctly_classified']['hit_rate']:18.2f}%")
    true_map = results["diagnosis"]["true_class_map"]
    lines.append(f"the true class's map, at the CAM threshold: {100 * true_map['hit_rate']:.2f}% "
                 f"(mean IoU {true_map['mean_iou']:.3f})")
    return "\n".join(lines)

"""The localisation benchmark: train NIN on translated digits with labels only, then locate them.

Three locators are scored the same way (fraction of test canvases whose box has IoU >= 0.5
with the true box): the predicted class's confidence map (CAM), the gradient saliency of the
same model, and a centred box of the mean true size (no information at all).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nin.config import RECIPE_DEFAULTS
from nin.data.batches import iterate_batches, make_prepare, shuffle_order
from nin.data.registry import dataset_info
from nin.data.sources import load_dataset
from nin.localization.boxes import centred_box, gradient_saliency, iou
from nin.localization.canvas import Canvases, make_canvases
from nin.maps.confidence import class_maps, upsample
from nin.maps.locate import DEFAULT_THRESHOLD, box_from_heatmap
from nin.models.registry import build_model
from nin.train.device import autocast, resolve_device, use_bf16
from nin.train.loop import StepOptions, train_one_epoch
from nin.train.recipes import initialize_, param_groups
from nin.train.schedule import one_cycle_lr

IOU_HIT = 0.5


@dataclass(frozen=True)
class LocalizeConfig:
    data_dir: Path | None = None
    offline: bool = False
    train_count: int = 20_000
    test_count: int = 2_000
    size: int = 64
    clutter: int = 4
    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.2
    threshold: float = DEFAULT_THRESHOLD
    seed: int = 0
    device: str = "auto"
    progress: bool = True


def train_on_canvases(cfg: LocalizeConfig, train: Canvases, device: torch.device, log=print):
    """nin-mnist with the fast recipe (labels only: the boxes are never seen)."""
    torch.manual_seed(cfg.seed)
    info = dataset_info("mnist")
    model = build_model("nin-mnist").to(device, memory_format=torch.channels_last)
    prepare = make_prepare(info.mean, info.std, device, channels_last=True)
    images, labels = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    initialize_(model, "lsuv", sample=prepare(images[:256].to(device)))
    recipe = RECIPE_DEFAULTS["fast"]
    optimizer = torch.optim.SGD(param_groups(model, "fast", recipe.weight_decay), lr=cfg.lr, momentum=0.9,
                                nesterov=True)
    step = StepOptions.for_recipe("fast", prepare, autocast(device, use_bf16(device, "auto")), device)
    steps = len(labels) // cfg.batch_size
    total = cfg.epochs * steps
    for epoch in range(cfg.epochs):
        order = shuffle_order(len(labels), cfg.seed, epoch)
        stats = train_one_epoch(model, iterate_batches(images, labels, cfg.batch_size, order, drop_last=True), steps,
                                optimizer, lambda s: one_cycle_lr(s, total, cfg.lr, total // 10), epoch * steps,
                                step, epoch, progress=cfg.progress)
        log(f"epoch {epoch + 1}/{cfg.epochs}: train loss {stats.loss:.4f} acc {stats.accuracy:.2f}% "
            f"({stats.images_per_second:.0f} img/s)")
    return model.eval(), prepare


def locate(model, prepare, test: Canvases, mean_box_hw: tuple[float, float], threshold: float,
           device: torch.device, batch_size: int = 250) -> dict:
    """Boxes from each locator for every test canvas, and the predicted classes."""
    size = test.images.shape[-2:]
    boxes = {"cam": [], "saliency": []}
    predicted = []
    for start in range(0, len(test.labels), batch_size):
        x = prepare(torch.from_numpy(test.images[start:start + batch_size]).to(device))
        maps, logits = class_maps(model, x)
        pred = logits.argmax(dim=1)
        heat = upsample(maps, size)[torch.arange(len(pred)), pred].cpu().numpy()
        saliency = gradient_saliency(model, x, pred).float().cpu().numpy()
        boxes["cam"] += [box_from_heatmap(h, threshold) for h in heat]
        boxes["saliency"] += [box_from_heatmap(s, threshold) for s in saliency]
        predicted.append(pred.cpu())
    boxes["centred"] = [centred_box(*size, *mean_box_hw)] * len(test.labels)
    return {"boxes": boxes, "predicted": torch.cat(predicted).numpy()}


def score(boxes: list, truth: np.ndarray, mask: np.ndarray | None = None) -> dict:
    ious = np.array([iou(b, t) for b, t in zip(boxes, truth)])
    if mask is not None:
        ious = ious[mask]
    return {"hit_rate": float((ious >= IOU_HIT).mean()), "mean_iou": float(ious.mean()), "count": int(len(ious))}


def run_benchmark(cfg: LocalizeConfig, log=print) -> dict:
    start = time.perf_counter()
    device = resolve_device(cfg.device)
    mnist = load_dataset("mnist", cfg.data_dir, cfg.offline)
    train = make_canvases(mnist.train.images.numpy(), mnist.train.labels.numpy(), cfg.train_count, cfg.size,
                          cfg.clutter, seed=cfg.seed)
    test = make_canvases(mnist.test.images.numpy(), mnist.test.labels.numpy(), cfg.test_count, cfg.size,
                         cfg.clutter, seed=cfg.seed + 1)
    log(f"{cfg.train_count} training and {cfg.test_count} test canvases of {cfg.size}x{cfg.size}, "
        f"{cfg.clutter} clutter fragments each")
    model, prepare = train_on_canvases(cfg, train, device, log)
    train_seconds = time.perf_counter() - start
    # The centred baseline knows the mean true box size of the training canvases, nothing else.
    widths, heights = train.boxes[:, 2] - train.boxes[:, 0], train.boxes[:, 3] - train.boxes[:, 1]
    found = locate(model, prepare, test, (float(heights.mean()), float(widths.mean())), cfg.threshold, device)
    correct = found["predicted"] == test.labels
    results = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        "test_accuracy": float(correct.mean() * 100),
        "iou_threshold": IOU_HIT,
        "locators": {name: {"all": score(b, test.boxes), "correctly_classified": score(b, test.boxes, correct)}
                     for name, b in found["boxes"].items()},
        "train_seconds": round(train_seconds, 1),
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    return results


def format_results(results: dict) -> str:
    lines = [f"test classification accuracy {results['test_accuracy']:.2f}%",
             f"{'locator':<10} {'IoU>=0.5 (all)':>15} {'mean IoU':>9} {'IoU>=0.5 (correct)':>19}"]
    for name, r in results["locators"].items():
        lines.append(f"{name:<10} {100 * r['all']['hit_rate']:14.2f}% {r['all']['mean_iou']:9.3f} "
                     f"{100 * r['correctly_classified']['hit_rate']:18.2f}%")
    return "\n".join(lines)

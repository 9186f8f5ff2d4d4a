"""Predictions and their scores: logits of uint8 images in batches (flip TTA optional), loss, accuracy and the
confusion matrix. Used by training's per-epoch evaluation, `nin eval` and `nin predict` alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

Prepare = Callable[[torch.Tensor], torch.Tensor]   # uint8 batch on the device -> model input


@dataclass
class EvalResult:
    loss: float
    accuracy: float           # percent
    confusion: torch.Tensor   # (num_classes, num_classes) int64: rows true class, columns predicted

    @property
    def error(self) -> float:
        return 100.0 - self.accuracy

    def per_class_accuracy(self) -> list[float]:
        totals = self.confusion.sum(dim=1).clamp(min=1)
        return (100.0 * self.confusion.diag() / totals).tolist()


def forward_views(model, x: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """fp32 logits of x; with `flip`, the mean of those of x and of its mirror image (flip test-time
    augmentation: both views of an image the model was trained to see)."""
    logits = model(x).float()
    return (logits + model(x.flip(3)).float()) / 2 if flip else logits


@torch.no_grad()
def predict_logits(model, images: torch.Tensor, batch_size: int, prepare: Prepare, autocast,
                   device: torch.device, flip: bool = False) -> torch.Tensor:
    """Logits (N, num_classes) in fp32 for uint8 images (N, C, H, W), in eval mode (`flip`: see forward_views)."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = prepare(images[start:start + batch_size].to(device))
        with autocast:
            out.append(forward_views(model, batch, flip))
    return torch.cat(out) if out else torch.empty(0)


def score(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> EvalResult:
    """Loss, accuracy and confusion matrix of fp32 logits (N, num_classes) against labels (N,)."""
    loss = F.cross_entropy(logits, labels).item() if len(labels) else float("nan")
    predicted = logits.argmax(dim=1)
    confusion = torch.bincount(labels * num_classes + predicted, minlength=num_classes ** 2).view(num_classes, num_classes)
    accuracy = 100.0 * (predicted == labels).float().mean().item() if len(labels) else float("nan")
    return EvalResult(loss, accuracy, confusion)

"""One epoch of training, and evaluation."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from tqdm import tqdm

from nin.recipe import Recipe
from nin.errors import NinError
from nin.train.recipes import set_lr


class NonFiniteLoss(NinError):
    """The loss became NaN or infinite: the run stops (exit code 3)."""

    exit_code = 3


@dataclass
class EpochStats:
    loss: float
    accuracy: float           # percent
    images: int
    seconds: float
    stopped_early: bool = False   # the deadline came before the epoch's end

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


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


Prepare = Callable[[torch.Tensor], torch.Tensor]   # uint8 batch on the device -> model input


@dataclass(frozen=True)
class StepOptions:
    """What every training step does around the forward and backward pass."""
    prepare: Prepare              # uint8 batch on the device -> model input
    autocast: object              # bf16 autocast, or a null context
    device: torch.device
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    label_smoothing: float = 0.0
    clip_grad_norm: float = 0.0   # 0: no clipping
    after_step: Callable[[], None] | None = None   # after each optimizer step (the weights' moving average)

    @classmethod
    def for_recipe(cls, recipe: Recipe, prepare: Prepare, autocast, device: torch.device, augment=None) -> StepOptions:
        """The step of a recipe as nin.recipe sets it (what the benchmarks measure)."""
        return cls(prepare, autocast, device, augment, recipe.label_smoothing, recipe.clip_grad_norm)


@dataclass
class EpochProgress:
    """How far an epoch got: what a mid-epoch checkpoint needs to continue it exactly."""
    batches_done: int = 0
    loss_sum: torch.Tensor | None = None   # the running sum as the loop holds it (same dtype: same result)
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0

    def to_state(self) -> dict:
        return {"batches_done": self.batches_done, "loss_sum": self.loss_sum.detach().cpu().clone(),
                "correct": self.correct, "seen": self.seen, "seconds": self.seconds}


def training_step(model, optimizer, images: torch.Tensor, labels: torch.Tensor,
                  step: StepOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a prepared, augmented batch; returns the loss (detached) and the logits.

    The one place the step is written: the training loop and benchmarks/step_profile.py both run it.
    """
    with step.autocast:
        logits = model(images)
    loss = F.cross_entropy(logits.float(), labels, label_smoothing=step.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if step.clip_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), step.clip_grad_norm, foreach=True)
    optimizer.step()
    if step.after_step is not None:
        step.after_step()
    return loss.detach(), logits


def train_one_epoch(model, batches: Iterable, num_batches: int, optimizer, lr_at: Callable[[int], float],
                    first_step: int, step: StepOptions, epoch: int, *, progress: bool = False,
                    deadline: float | None = None, resume_from: EpochProgress | None = None,
                    checkpoint_every: int = 0, on_checkpoint: Callable[[EpochProgress], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> EpochStats:
    """Train over `batches`; `lr_at(global_step)` gives each step's learning rate before scaling.

    `deadline` (a time.perf_counter() value): stop after the first step that ends past it.
    `resume_from`: the epoch already ran that far; `batches` holds only the rest of it.
    `on_checkpoint(progress)` is called every `checkpoint_every` batches of the epoch (not at its end).
    `should_stop()` true after a step: checkpoint there (if there is `on_checkpoint`), then KeyboardInterrupt.
    """
    model.train()
    device = step.device
    done = resume_from.batches_done if resume_from else 0
    loss_sum = resume_from.loss_sum.to(device) if resume_from else torch.zeros((), device=device)
    correct = torch.tensor(resume_from.correct if resume_from else 0, dtype=torch.int64, device=device)
    seen = resume_from.seen if resume_from else 0
    seconds_before = resume_from.seconds if resume_from else 0.0
    # A host sync costs nothing on CPU; on GPU check for NaN and refresh the bar less often.
    sync_every = 1 if device.type == "cpu" else 50
    # Redirected output (a log file) gets a line every 30 s instead of ten a second.
    interval = 0.5 if sys.stderr.isatty() else 30.0
    bar = tqdm(total=num_batches, initial=done, desc=f"epoch {epoch + 1}", unit="batch", disable=not progress,
               leave=False, mininterval=interval)
    start = time.perf_counter()
    stopped = False
    for i, (images, labels) in enumerate(batches, start=done):
        lr = lr_at(first_step + i)
        set_lr(optimizer, lr)
        images = step.prepare(images.to(device, non_blocking=True))
        if step.augment is not None:
            images = step.augment(images)
        labels = labels.to(device, non_blocking=True)
        loss, logits = training_step(model, optimizer, images, labels, step)
        loss_sum += loss * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum()
        seen += len(labels)
        if (i + 1) % sync_every == 0 or i + 1 == num_batches:
            running = loss_sum.item() / seen
            if not math.isfinite(running):
                raise NonFiniteLoss(f"the training loss became {running} in epoch {epoch + 1} at step {first_step + i + 1} "
                                    "(around here); lower --lr; the last checkpoint is untouched")
            if progress and ((i + 1) % 10 == 0 or i + 1 == num_batches):
                elapsed = time.perf_counter() - start + seconds_before
                bar.set_postfix(loss=f"{running:.4f}", acc=f"{100.0 * correct.item() / seen:.2f}%",
                                **{"img/s": f"{seen / elapsed:.0f}"}, lr=f"{lr:.4g}", refresh=False)
            bar.update((i + 1) - bar.n)
        stopping = should_stop is not None and should_stop() and i + 1 < num_batches
        if on_checkpoint is not None and i + 1 < num_batches and (
                stopping or (checkpoint_every and (i + 1) % checkpoint_every == 0)):
            on_checkpoint(EpochProgress(i + 1, loss_sum, int(correct.item()), seen,
                                        seconds_before + time.perf_counter() - start))
        if stopping:
            raise KeyboardInterrupt
        if deadline is not None and time.perf_counter() > deadline and i + 1 < num_batches:
            stopped = True
            break
    bar.close()
    seconds = seconds_before + time.perf_counter() - start
    return EpochStats(loss_sum.item() / max(seen, 1), 100.0 * correct.item() / max(seen, 1), seen, seconds, stopped)


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


def evaluate(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int, prepare: Prepare, autocast,
             device: torch.device, num_classes: int, flip: bool = False) -> EvalResult:
    return score(predict_logits(model, images, batch_size, prepare, autocast, device, flip).cpu(), labels, num_classes)

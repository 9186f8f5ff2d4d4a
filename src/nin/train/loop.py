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

from nin.errors import NinError
from nin.recipe import Recipe
from nin.scoring import EvalResult, Prepare, predict_logits, score
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


@dataclass
class EpochControl:
    """What `nin train` adds to a bare epoch: a progress bar, a deadline, resuming and mid-epoch checkpoints.

    `deadline` (a time.perf_counter() value): stop after the first step that ends past it.
    `resume_from`: the epoch already ran that far; the batches hold only the rest of it.
    `on_checkpoint(progress)` is called every `checkpoint_every` batches of the epoch (not at its end).
    `should_stop()` true after a step: checkpoint there (if there is `on_checkpoint`), then KeyboardInterrupt.
    """
    progress: bool = False
    deadline: float | None = None
    resume_from: EpochProgress | None = None
    checkpoint_every: int = 0
    on_checkpoint: Callable[[EpochProgress], None] | None = None
    should_stop: Callable[[], bool] | None = None

    def checkpoint_due(self, done: int, stopping: bool) -> bool:
        return self.on_checkpoint is not None and (
            stopping or bool(self.checkpoint_every and done % self.checkpoint_every == 0))


class _Tally:
    """The epoch's running loss sum, correct count, images and seconds, continued from a mid-epoch checkpoint.

    The sums stay on the device (no host sync a step) in the dtype the checkpoint keeps."""

    def __init__(self, device: torch.device, resume_from: EpochProgress | None):
        self.done = resume_from.batches_done if resume_from else 0
        self.loss_sum = resume_from.loss_sum.to(device) if resume_from else torch.zeros((), device=device)
        self.correct = torch.tensor(resume_from.correct if resume_from else 0, dtype=torch.int64, device=device)
        self.seen = resume_from.seen if resume_from else 0
        self.seconds_before = resume_from.seconds if resume_from else 0.0
        self.start = time.perf_counter()

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss_sum += loss * len(labels)
        self.correct += (logits.argmax(dim=1) == labels).sum()
        self.seen += len(labels)

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.start

    def running_loss(self, epoch: int, batch: int) -> float:
        """The mean loss so far (a host sync); NonFiniteLoss if it is NaN or infinite."""
        running = self.loss_sum.item() / self.seen
        if not math.isfinite(running):
            raise NonFiniteLoss(f"the training loss became {running} in epoch {epoch + 1} at step {batch} of the epoch "
                                "(around here); lower --lr; the last checkpoint is untouched")
        return running

    def progress(self, batches_done: int) -> EpochProgress:
        return EpochProgress(batches_done, self.loss_sum, int(self.correct.item()), self.seen, self.seconds())

    def stats(self, stopped: bool) -> EpochStats:
        seen = max(self.seen, 1)
        return EpochStats(self.loss_sum.item() / seen, 100.0 * self.correct.item() / seen, self.seen, self.seconds(),
                          stopped)


def _progress_bar(num_batches: int, done: int, epoch: int, shown: bool):
    # Redirected output (a log file) gets a line every 30 s instead of ten a second.
    return tqdm(total=num_batches, initial=done, desc=f"epoch {epoch + 1}", unit="batch", disable=not shown,
                leave=False, mininterval=0.5 if sys.stderr.isatty() else 30.0)


def train_one_epoch(model, batches: Iterable, num_batches: int, optimizer, lr_at: Callable[[int], float],
                    step: StepOptions, epoch: int, control: EpochControl = EpochControl()) -> EpochStats:
    """Train over `batches`; `lr_at(i)` gives the learning rate (before scaling) of the epoch's i-th step."""
    model.train()
    tally = _Tally(step.device, control.resume_from)
    bar = _progress_bar(num_batches, tally.done, epoch, control.progress)
    sync_every = 1 if step.device.type == "cpu" else 50   # a host sync is free on CPU; on GPU, check less often
    stopped = False
    for i, (images, labels) in enumerate(batches, start=tally.done):
        done, last = i + 1, i + 1 == num_batches
        lr = lr_at(i)
        set_lr(optimizer, lr)
        images = step.prepare(images.to(step.device, non_blocking=True))
        images = step.augment(images) if step.augment is not None else images
        labels = labels.to(step.device, non_blocking=True)
        loss, logits = training_step(model, optimizer, images, labels, step)
        tally.add(loss, logits, labels)
        if done % sync_every == 0 or last:
            running = tally.running_loss(epoch, done)
            if control.progress and (done % 10 == 0 or last):
                bar.set_postfix(loss=f"{running:.4f}", acc=f"{100.0 * tally.correct.item() / tally.seen:.2f}%",
                                **{"img/s": f"{tally.seen / tally.seconds():.0f}"}, lr=f"{lr:.4g}", refresh=False)
            bar.update(done - bar.n)
        stopping = control.should_stop is not None and control.should_stop() and not last
        if not last and control.checkpoint_due(done, stopping):
            control.on_checkpoint(tally.progress(done))
        if stopping:
            raise KeyboardInterrupt
        if control.deadline is not None and time.perf_counter() > control.deadline and not last:
            stopped = True
            break
    bar.close()
    return tally.stats(stopped)


EVAL_BATCH = 512   # images a forward pass in evaluation


def evaluate(model, images: torch.Tensor, labels: torch.Tensor, step: StepOptions, num_classes: int,
             flip: bool = False) -> EvalResult:
    """Loss, accuracy and confusion matrix of uint8 images, prepared as `step` prepares a batch."""
    logits = predict_logits(model, images, EVAL_BATCH, step.prepare, step.autocast, step.device, flip)
    return score(logits.cpu(), labels, num_classes)

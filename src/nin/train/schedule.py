"""Learning rates as pure functions of the step or of the training history."""

from __future__ import annotations

import math


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up from 1/warmup_steps to 1 over the first `warmup_steps` steps."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step + 1) / warmup_steps)


def one_cycle_lr(step: int, total_steps: int, peak_lr: float, warmup_steps: int) -> float:
    """Fast recipe: linear warm-up to `peak_lr`, then cosine decay to zero at `total_steps`."""
    if step < warmup_steps:
        return peak_lr * warmup_factor(step, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def time_cycle_lr(step: int, time_fraction: float, peak_lr: float, warmup_steps: int) -> float:
    """Fast recipe against a time budget: the same warm-up, then a cosine over the budget's time
    (`time_fraction`: the share used so far) instead of over the steps, reaching zero when it runs out."""
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, time_fraction))))
    return peak_lr * warmup_factor(step, warmup_steps) * cosine


def plateau_count(train_accuracies: list[float], patience: int, min_delta: float) -> int:
    """How many times training accuracy has stopped improving (paper, section 4.1).

    An epoch improves when its accuracy beats the best so far by more than `min_delta`
    (percentage points). After `patience` epochs in a row without improvement, one
    plateau is counted and the count of epochs without improvement starts again.
    """
    best, stale, plateaus = -math.inf, 0, 0
    for accuracy in train_accuracies:
        if accuracy > best + min_delta:
            best, stale = accuracy, 0
        else:
            stale += 1
            if stale >= patience:
                plateaus, stale = plateaus + 1, 0
    return plateaus


# The paper divides the LR by 10 at the first two plateaus and stops at the third.
PAPER_DROPS = 2


def paper_lr(base_lr: float, plateaus: int) -> float:
    return base_lr / 10 ** min(plateaus, PAPER_DROPS)


def paper_should_stop(plateaus: int) -> bool:
    return plateaus > PAPER_DROPS


def step_lr(base_lr: float, epoch: int, drop_epochs: list[int]) -> float:
    """The authors' cuda-convnet schedule: the rate divided by 10 after each of `drop_epochs` (1-based counts of
    finished epochs), e.g. [200, 230]: epochs 1-200 at `base_lr`, 201-230 at a tenth, the rest at a hundredth.
    `epoch` is 0-based."""
    return base_lr / 10 ** sum(epoch >= drop for drop in drop_epochs)

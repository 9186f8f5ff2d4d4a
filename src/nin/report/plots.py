"""The report's figures: training curves and the confusion matrix, as PNG bytes."""

from __future__ import annotations

import numpy as np

from nin.pictures import plt, png_bytes


def training_curves(history: list[dict]) -> bytes:
    """Loss, accuracy and learning rate per epoch; train beside validation (or test)."""
    epochs = [row["epoch"] for row in history]
    eval_name = "val" if "val_loss" in history[0] else "test"
    fig, (loss_ax, acc_ax, lr_ax) = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, key, label in ((loss_ax, "loss", "loss"), (acc_ax, "accuracy", "accuracy (%)")):
        ax.plot(epochs, [row[f"train_{key}"] for row in history], marker=".", label="train")
        ax.plot(epochs, [row[f"{eval_name}_{key}"] for row in history], marker=".", label=eval_name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend()
        ax.grid(alpha=0.3)
    rates = [row["lr"] for row in history]
    lr_ax.plot(epochs, rates, marker=".")
    lr_ax.set_xlabel("epoch")
    lr_ax.set_ylabel("learning rate (end of epoch)")
    # A rate annealed to zero within a short time budget has no positive value to put on a log axis.
    if any(rate > 0 for rate in rates):
        lr_ax.set_yscale("log")
    lr_ax.grid(alpha=0.3)
    fig.tight_layout()
    return png_bytes(fig)


def confusion_matrix(confusion: np.ndarray, class_names: list[str]) -> bytes:
    """Rows: true class; columns: predicted; colour: fraction of the row (counts written for small matrices)."""
    confusion = np.asarray(confusion)
    k = len(confusion)
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    size = min(12, 2 + 0.5 * k)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if k <= 20:
        ax.set_xticks(range(k), class_names, rotation=90, fontsize=8)
        ax.set_yticks(range(k), class_names, fontsize=8)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    return png_bytes(fig)


def accuracy_against_minutes(curves: dict[str, list[dict]], targets: dict[str, float], budget_minutes: float,
                             axis: str = "minutes") -> bytes:
    """Test accuracy (%) against the points' `axis` minutes (nin.reproduce.curves.minutes_axis), one line per
    run, the paper's targets as dashed lines."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, points in curves.items():
        ax.plot([p[axis] for p in points], [p["test_accuracy"] for p in points], marker=".", label=label)
    for i, (label, accuracy) in enumerate(sorted(targets.items(), key=lambda t: -t[1])):
        ax.axhline(accuracy, linestyle="--", linewidth=0.8, color="grey")
        # the highest label above its line, the others below theirs: close targets' labels then do not overlap
        ax.annotate(label, (0, accuracy), xytext=(2, 2 if i == 0 else -9), textcoords="offset points", fontsize=8,
                    color="grey")
    ax.axvline(budget_minutes, linestyle=":", color="black", linewidth=0.8)
    ax.set_xlabel("minutes of the run, evaluations included (as its card counts them)" if axis == "wall_minutes"
                  else "minutes of training steps (the per-epoch evaluations not counted)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xlim(0, budget_minutes * 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return png_bytes(fig, dpi=110)

"""Test accuracy against training minutes, from the per-epoch metrics kept beside the records (pure)."""

from __future__ import annotations


def time_to_accuracy(rows: list[dict]) -> list[dict]:
    """[{"epoch", "minutes", "test_accuracy"}] from metrics.csv rows: minutes are the training steps' time
    so far (the sum of the epochs' seconds); the per-epoch test evaluation is not in them, while the
    card's wall_seconds counts it (about 12 s an epoch on CIFAR-10 with flip TTA on 2 cores). Rows of
    runs that recorded it (elapsed_seconds) add "wall_minutes": the time as the card counts it, the
    evaluations included."""
    points, seconds = [], 0.0
    for row in rows:
        seconds += float(row["epoch_seconds"])
        epoch = float(row["epoch"])   # fractional where a time budget stopped the run mid-epoch
        point = {"epoch": int(epoch) if epoch.is_integer() else epoch, "minutes": round(seconds / 60, 2),
                 "test_accuracy": float(row["test_accuracy"])}
        if row.get("elapsed_seconds") not in (None, ""):
            point["wall_minutes"] = round(float(row["elapsed_seconds"]) / 60, 2)
        points.append(point)
    return points


def minutes_axis(curves: list[list[dict]]) -> str:
    """The key to plot curves against together: "wall_minutes" when every point has it, else "minutes"
    (one axis for all, so that no curve gains the evaluation time that another leaves out)."""
    return "wall_minutes" if all("wall_minutes" in p for points in curves for p in points) else "minutes"


def minutes_to_reach(points: list[dict], accuracy: float, axis: str = "minutes") -> float | None:
    """The minutes (`axis`) at the first epoch whose test accuracy is at least `accuracy`; None if never."""
    return next((p[axis] for p in points if p["test_accuracy"] >= accuracy), None)

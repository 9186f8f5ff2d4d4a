"""The results table: records of finished runs in, Markdown out (pure)."""

from __future__ import annotations

import statistics

from nin.provenance import short_commit
from nin.reproduce.experiments import Experiment


def summarize(errors: list[float]) -> str:
    """'mean ± sample std (n)' of test errors in percent."""
    if len(errors) == 1:
        return f"{errors[0]:.2f}"
    return f"{statistics.mean(errors):.2f} ± {statistics.stdev(errors):.2f} (n={len(errors)})"


def render_table(experiments: dict[str, Experiment], records: list[dict], not_run: dict[str, str]) -> str:
    """One row per experiment: the paper's error beside ours (mean ± std over seeds), or why it was not run."""
    header = ("| experiment | paper row | paper error % | our error %, single view | with flip TTA % | seeds | data | "
              "epochs | wall time | machine | command | commit |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for name, exp in experiments.items():
        rows = sorted((r for r in records if r["experiment"] == name), key=lambda r: r["seed"])
        paper = f"{exp.paper_error:.2f}" if exp.paper_error is not None else "-"
        if not rows:
            reason = not_run.get(name, "not run yet on this machine")
            lines.append(f"| {name} | {exp.paper_row} | {paper} | not run: {reason} | | | | | | | | |")
            continue
        # Single view is what the paper reports; a run measured only with flip TTA has no single-view number.
        errors = [r["test_error"] for r in rows if r["test_error"] is not None]
        flips = [r["test_error_flip"] for r in rows if r.get("test_error_flip") is not None]
        # Seeds run with different budgets show them all, in the remark and the wall-time cell alike.
        budget = "/".join(f"{b:g}" for b in sorted({r["budget_minutes"] for r in rows
                                                     if r.get("budget_minutes") is not None}))
        remarks = []
        if any(r.get("short_budget") for r in rows):
            remarks.append(f"short budget: {budget} min")
        if exp.group == "paper" and exp.paper_error is not None and errors and statistics.mean(errors) > exp.paper_error:
            remarks.append("paper's error not reached")   # a missed target says so in its own row
        ours = (summarize(errors) if errors else "not measured: flip TTA only") + (f" ({'; '.join(remarks)})" if remarks else "")
        if len(errors) < len(rows) and errors:
            ours += f" ({len(rows) - len(errors)} seed(s) measured with flip TTA only)"
        epochs = "/".join(str(r["epochs"]) for r in rows)
        wall = "/".join(f"{r['wall_seconds'] / 60:.0f} min" for r in rows)
        if budget:
            wall += f" (budget {budget} min)"
        commits = sorted({short_commit(r["commit"]) for r in rows})
        lines.append(f"| {name} | {exp.paper_row} | {paper} | {ours} | {summarize(flips) if flips else ''} | "
                     f"{', '.join(str(r['seed']) for r in rows)} | "
                     f"{rows[0]['data']} | {epochs} | {wall} | {rows[0]['machine']} | `{rows[0]['command']}` | "
                     f"{', '.join(commits)} |")
    return "\n".join(lines)


def _held_out_accuracy(row: dict) -> float:
    """The epoch's accuracy on the held-out split it was evaluated on (validation if the run had one, else test)."""
    return float(row["val_accuracy"] if "val_accuracy" in row else row["test_accuracy"])


def render_curves(experiments: dict[str, Experiment], records: list[dict], histories: dict[tuple[str, int], list[dict]],
                  group: str = "comparison") -> str:
    """Training against held-out accuracy every 5 epochs (and at the last) for each run of `group` whose
    per-epoch metrics were kept (histories: (experiment, seed) -> metrics.csv rows); '' if there are none."""
    runs = [(r["experiment"], r["seed"]) for r in records
            if r["experiment"] in experiments and experiments[r["experiment"]].group == group
            and (r["experiment"], r["seed"]) in histories]
    if not runs:
        return ""
    by_epoch = {run: {int(float(row["epoch"])): row for row in histories[run]} for run in runs}
    every_fifth = {e for rows in by_epoch.values() for e in rows if e % 5 == 0}
    columns = sorted(every_fifth | {max(rows) for rows in by_epoch.values()})
    lines = ["| experiment | seed | " + " | ".join(f"epoch {e}" for e in columns) + " |",
             "|---|---|" + "---:|" * len(columns)]
    for run in runs:
        cells = [f"{float(row['train_accuracy']):.1f} / {_held_out_accuracy(row):.1f}" if (row := by_epoch[run].get(e))
                 else "" for e in columns]
        lines.append(f"| {run[0]} | {run[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

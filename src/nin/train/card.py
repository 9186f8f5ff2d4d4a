"""The end of a run: its weights file (with what new images need) and its card."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from nin.config import TrainConfig
from nin.data.preprocess import zca_tensors
from nin.data.datasets import LoadedDataset
from nin.files import PREPROCESS_PREFIX, atomic_write_json, save_weights
from nin.models.nin import NIN
from nin.provenance import commit, machine, peak_memory_bytes
from nin.rundir import CARD_FILE, WEIGHTS_FILE

if TYPE_CHECKING:
    from nin.train.run import RunState, Trainer


def weights_meta(cfg: TrainConfig, model: NIN, data: LoadedDataset) -> dict:
    info = data.info
    return {"preset": cfg.preset, "recipe": cfg.recipe, "dataset": info.name, "model_config": model.config.to_dict(),
            "class_names": list(info.class_names), "mean": list(info.mean), "std": list(info.std),
            "preprocess": data.preprocess, "val_split": cfg.val_split, "seed": cfg.seed, "test_flip": cfg.test_flip}


def preprocess_tensors(data: LoadedDataset) -> dict[str, torch.Tensor]:
    """What new images need besides the weights: the fitted ZCA whitening for gcn-zca, else nothing."""
    if data.zca is None:
        return {}
    # The matrix packed losslessly in 42% of its float32 size (see preprocess.PackedSymmetric); copied,
    # since the cache's arrays are read-only maps and torch warns on those.
    return {PREPROCESS_PREFIX + name: torch.tensor(value) for name, value in zca_tensors(data.zca).items()}


def finish(run_dir: Path, cfg: TrainConfig, trainer: Trainer, state: RunState, results, wall: float,
           stopped_by_budget: bool = False) -> dict:
    """Save the weights and write the card. `results`: the single-view test result, and the flip-TTA one or None.

    `test_error` is single view, the number the paper's tables give; flip TTA has fields of its own."""
    result, flipped = results
    model, data, history, resumes = trainer.result_model, trainer.data, state.history, state.resumes
    save_weights(run_dir / WEIGHTS_FILE, {**model.state_dict(), **preprocess_tensors(data)},
                 weights_meta(cfg, model, data))
    last = history[-1] if history else {}
    card = {
        "preset": cfg.preset, "recipe": cfg.recipe, "dataset": cfg.dataset,
        "epochs": history[-1]["epoch"] if history else 0,   # fractional when a time budget cut an epoch short
        "preprocess": data.preprocess, "augment": cfg.augment, "val_split": cfg.val_split,
        "val_accuracy": last.get("val_accuracy"),
        "test_error": round(result.error, 4), "test_accuracy": round(result.accuracy, 4), "test_flip": cfg.test_flip,
        **({"test_error_flip": round(flipped.error, 4), "test_accuracy_flip": round(flipped.accuracy, 4)}
           if flipped is not None else {}),
        "wall_seconds": round(wall, 1), "parameters": sum(p.numel() for p in model.parameters()),
        "stopped_by_time_budget": stopped_by_budget, "commit": commit(), "machine": machine(),
        "finished": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "seed": cfg.seed, "precision": "bf16" if trainer.bf16 else "fp32", "device": str(next(model.parameters()).device),
        "class_names": list(data.info.class_names), "per_class_accuracy": [round(a, 4) for a in result.per_class_accuracy()],
        "confusion_matrix": result.confusion.tolist(), "weights": WEIGHTS_FILE,
        "weights_sha256": hashlib.sha256((run_dir / WEIGHTS_FILE).read_bytes()).hexdigest(),
        "data": data.record.get("description", data.info.name), "resumes": resumes or [],
        # of this process: loading, preprocessing and training (after a resume, only the last stretch's)
        "peak_memory_gb": round(peak_memory_bytes() / 1e9, 3),
    }
    atomic_write_json(run_dir / CARD_FILE, card)
    return card

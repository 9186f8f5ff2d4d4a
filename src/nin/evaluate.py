"""A trained model on a data set's test split, preprocessed with the constants its weights carry.

Only the test split is read: GCN + ZCA (CIFAR) and LCN (SVHN) are applied as `nin predict` applies
them, with the whitening stored in the weights file, so evaluating a shipped model needs neither
the training images nor a ZCA fit, and it tests exactly what a user of the weights gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nin.data.batches import make_prepare
from nin.data.datasets import PREPROCESS_CHUNK, load_raw_test, load_raw_val
from nin.errors import NinError
from nin.inference import Trained, meta_dataset, model_inputs, to_device
from nin.maps.confidence import class_maps, strongest_map
from nin.scoring import EvalResult, predict_logits, score
from nin.train.allocator import freed_memory_kept
from nin.train.device import autocast, resolve_device, use_bf16



@dataclass
class Evaluation:
    dataset: str
    result: EvalResult
    predicted: torch.Tensor   # (N,) int64: the predicted class of every image, in file order
    split: str = "test"
    flip: bool = False        # the logits were averaged with the mirror images' (flip TTA)


def test_inputs(trained: Trained, images: torch.Tensor) -> torch.Tensor:
    """uint8 test images -> what the model takes: uint8 as they are when the model standardises them
    itself (preprocess none), else preprocessed in chunks with the weights' constants."""
    if trained.meta.get("preprocess", "none") == "none":
        return images
    return torch.cat([model_inputs(trained, images[start:start + PREPROCESS_CHUNK])
                      for start in range(0, len(images), PREPROCESS_CHUNK)])


@dataclass(frozen=True)
class EvalOptions:
    """Where and how the forward passes run (the answer does not depend on them, beyond bf16 rounding)."""
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 512


def evaluate_on_test(trained: Trained, dataset: str | None = None, data_dir: Path | None = None,
                     offline: bool = False, flip: bool = False, split: str = "test",
                     options: EvalOptions = EvalOptions()) -> Evaluation:
    """Loss, accuracy, confusion and predictions on the test split of `dataset` (default: the trained one),
    or with split "val" on the paper's validation images; `flip`: flip test-time augmentation (default: single
    view, the kind of number the paper reports)."""
    name = meta_dataset(trained.meta, dataset)
    if split == "val" and (trained.meta.get("val_split") != "paper" or name != trained.meta.get("dataset")):
        raise NinError("--split val: these weights did not hold out the paper's validation images of "
                       f"{name} (trained with --val-split {trained.meta.get('val_split', 'none')} on "
                       f"{trained.meta.get('dataset')}), so they would be measured on their training images")
    test = (load_raw_val if split == "val" else load_raw_test)(name, data_dir, offline)
    target = resolve_device(options.device)
    model = to_device(trained.model, target)
    meta = trained.meta
    prepare = make_prepare(tuple(meta.get("mean", (0.0,))), tuple(meta.get("std", (1.0,))), target,
                           channels_last=True)
    inputs = test_inputs(trained, test.images)
    with freed_memory_kept():
        logits = predict_logits(model, inputs, options.batch_size, prepare,
                                autocast(target, use_bf16(target, options.precision)), target, flip).cpu()
    num_classes = meta["model_config"]["num_classes"]
    return Evaluation(name, score(logits, test.labels, num_classes), logits.argmax(dim=1), split, flip)


def true_class_peak_flags(trained: Trained, images: torch.Tensor, labels: torch.Tensor
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Per image (bool arrays): correctly classified, and correctly classified with the true class's map
    having the highest peak. fp32, in batches of 1,000.

    The prediction is the map with the highest mean; the peak is a separate check that the maps
    locate the class rather than only average to it (the paper's "hint of localisation")."""
    correct, strongest = [], []
    with freed_memory_kept():
        for start in range(0, len(labels), 1000):
            batch, truth = images[start:start + 1000], labels[start:start + 1000]
            maps, logits = class_maps(trained.model, model_inputs(trained, batch))
            right = logits.argmax(dim=1) == truth
            correct.append(right.numpy())
            strongest.append((right & (strongest_map(maps) == truth)).numpy())
    return np.concatenate(correct), np.concatenate(strongest)


def pack_peak_flags(correct: np.ndarray, strongest: np.ndarray) -> np.ndarray:
    """One byte per image, as shipped beside the weights: bit 0 correct, bit 1 true-class peak highest."""
    return correct.astype(np.uint8) | (strongest.astype(np.uint8) << 1)


def unpack_peak_flags(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`pack_peak_flags` undone: (correct, strongest) as bool arrays."""
    return (flags & 1).astype(bool), (flags & 2).astype(bool)


def true_class_peaks(trained: Trained, images: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """(correctly classified images, those among them whose true class's map has the highest peak)."""
    correct, strongest = true_class_peak_flags(trained, images, labels)
    return int(correct.sum()), int(strongest.sum())

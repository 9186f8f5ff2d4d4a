"""This process's random-number states, as a checkpoint keeps them and a resume restores them."""

from __future__ import annotations

import random

import numpy as np
import torch


def rng_states() -> dict:
    """This process's random-number states as tensors and lists (weights_only-loadable)."""
    numpy_state = np.random.get_state()
    return {
        "rng_torch": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "rng_numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "rng_python": [list(random.getstate()[1]), random.getstate()[0], random.getstate()[2]],
    }


def restore_rng_states(state: dict, rank: int = 0) -> None:
    ranks = state.get("rng_ranks") or [state]   # checkpoints before rng_ranks held one process's states
    if rank >= len(ranks):
        raise ValueError(f"the checkpoint holds the random states of {len(ranks)} processes, not rank {rank}'s")
    mine = ranks[rank]
    torch.set_rng_state(mine["rng_torch"])
    if mine.get("rng_cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(mine["rng_cuda"])
    if "rng_numpy" in mine:
        kind, keys, *rest = mine["rng_numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    if "rng_python" in mine:
        internal, version, gauss = mine["rng_python"]
        random.setstate((version, tuple(internal), gauss))

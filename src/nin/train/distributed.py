"""Training in several processes under torchrun: PyTorch's process group and DistributedDataParallel.

Each global batch of `--batch-size` images is the same set of images as in a single process;
every rank takes an equal slice of it, and DDP averages the gradients, so N processes compute
the same update as one (up to floating-point summation order and per-rank random numbers).
Evaluation splits the images into contiguous shards (no padding, no duplicates) and sums the
confusion matrices, so every image is counted exactly once.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from nin.errors import NinError
from nin.train.loop import EvalResult, evaluate


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device_name: str) -> Ranks:
    """Join the process group that torchrun describes in the environment (none: one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Ranks(rank, world, local_rank)


def shutdown(ranks: Ranks) -> None:
    if ranks.enabled and dist.is_initialized():
        dist.destroy_process_group()


def check_batch_size(batch_size: int, ranks: Ranks) -> int:
    """The per-process batch: --batch-size is the global batch, split evenly."""
    if batch_size % ranks.world:
        raise NinError(f"--batch-size {batch_size} does not split evenly over {ranks.world} processes; "
                       f"use a multiple of {ranks.world}")
    return batch_size // ranks.world


def rank_order(order: torch.Tensor, steps: int, batch_size: int, ranks: Ranks) -> torch.Tensor:
    """This rank's slice of every global batch of `order` (the single-process shuffled order)."""
    if not ranks.enabled:
        return order
    per_rank = batch_size // ranks.world
    return order[:steps * batch_size].view(steps, ranks.world, per_rank)[:, ranks.rank].reshape(-1)


def reduce_sums(values: list[float], ranks: Ranks, device: torch.device) -> list[float]:
    """Sum numbers over ranks (float64)."""
    if not ranks.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def evaluate_sharded(model, images, labels, batch_size, prepare, autocast, device, num_classes,
                     ranks: Ranks) -> EvalResult:
    """`evaluate` with each rank on a contiguous shard, the sums reduced: every image counted once."""
    if not ranks.enabled:
        return evaluate(model, images, labels, batch_size, prepare, autocast, device, num_classes)
    n = len(labels)
    start, stop = n * ranks.rank // ranks.world, n * (ranks.rank + 1) // ranks.world
    part = evaluate(model, images[start:stop], labels[start:stop], batch_size, prepare, autocast, device, num_classes)
    confusion = part.confusion.to(device)
    dist.all_reduce(confusion)
    (loss_sum,) = reduce_sums([part.loss * (stop - start)], ranks, device)
    confusion = confusion.cpu()
    accuracy = 100.0 * confusion.diag().sum().item() / max(n, 1)
    return EvalResult(loss_sum / max(n, 1), accuracy, confusion)


def gather_objects(obj, ranks: Ranks) -> list:
    """Every rank's `obj`, in rank order (a list of one without torchrun)."""
    if not ranks.enabled:
        return [obj]
    out = [None] * ranks.world
    dist.all_gather_object(out, obj)
    return out


def parameters_digest(model) -> str:
    h = hashlib.sha256()
    for p in model.state_dict().values():
        h.update(p.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()

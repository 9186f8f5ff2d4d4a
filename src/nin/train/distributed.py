"""Training in several processes under torchrun: one object that owns the ranks and answers for them.

Each global batch of `--batch-size` images is the same set of images as in a single process;
every rank takes an equal slice of it, and DDP averages the gradients, so N processes compute
the same update as one (up to floating-point summation order and per-rank random numbers).
Evaluation splits the images into contiguous shards (no padding, no duplicates) and sums the
confusion matrices, so every image is counted exactly once.

Without torchrun, `Ranks()` is one process and every method is the single-process answer, so the
training loop reads the same either way (as Accelerate's `Accelerator` lets it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from nin.errors import NinError
from nin.scoring import EvalResult
from nin.train.loop import EpochStats, evaluate


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")   # this process's device: where collectives put their tensors

    @classmethod
    def from_env(cls, device: torch.device) -> Ranks:
        """Join the process group that torchrun describes in the environment (none: one process).

        Under torchrun a CUDA `device` becomes this process's own GPU (cuda:LOCAL_RANK)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(device=device)
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(rank, world, local_rank, device)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shutdown(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def per_rank_batch(self, batch_size: int) -> int:
        """The per-process batch: --batch-size is the global batch, split evenly."""
        if batch_size % self.world:
            raise NinError(f"--batch-size {batch_size} does not split evenly over {self.world} processes; "
                           f"use a multiple of {self.world}")
        return batch_size // self.world

    def my_slice(self, order: torch.Tensor, steps: int, batch_size: int) -> torch.Tensor:
        """This rank's slice of every global batch of `order` (the single-process shuffled order)."""
        if not self.enabled:
            return order
        per_rank = batch_size // self.world
        return order[:steps * batch_size].view(steps, self.world, per_rank)[:, self.rank].reshape(-1)

    def reduce(self, values: list[float]) -> list[float]:
        """Sum numbers over ranks (float64)."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj) -> list:
        """Every rank's `obj`, in rank order (a list of one without torchrun)."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def should_stop(self, requested: bool) -> bool:
        """Whether to stop after this step: this process's request, or any rank's under torchrun
        (all ranks must stop at the same step, or the next collective would hang)."""
        if self.enabled:
            (requested,) = self.reduce([float(requested)])
        return bool(requested)

    def epoch_stats(self, stats: EpochStats) -> EpochStats:
        """One epoch's loss and accuracy over all ranks' images."""
        if not self.enabled:
            return stats
        correct = round(stats.accuracy * stats.images / 100)
        loss_sum, correct, images = self.reduce([stats.loss * stats.images, correct, stats.images])
        return dataclasses.replace(stats, loss=loss_sum / max(images, 1), accuracy=100.0 * correct / max(images, 1),
                                   images=int(images))

    def evaluate(self, model, images, labels, step, num_classes: int, flip: bool = False) -> EvalResult:
        """`evaluate` with each rank on a contiguous shard, the sums reduced: every image counted once."""
        if not self.enabled:
            return evaluate(model, images, labels, step, num_classes, flip)
        n = len(labels)
        start, stop = n * self.rank // self.world, n * (self.rank + 1) // self.world
        part = evaluate(model, images[start:stop], labels[start:stop], step, num_classes, flip)
        confusion = part.confusion.to(self.device)
        dist.all_reduce(confusion)
        (loss_sum,) = self.reduce([part.loss * (stop - start)])
        confusion = confusion.cpu()
        accuracy = 100.0 * confusion.diag().sum().item() / max(n, 1)
        return EvalResult(loss_sum / max(n, 1), accuracy, confusion)

    def parameters_identical(self, model) -> bool:
        """Whether every rank holds the same parameters (DDP's promise, checked at the end)."""
        return len(set(self.gather(parameters_digest(model)))) == 1


def parameters_digest(model) -> str:
    h = hashlib.sha256()
    for p in model.state_dict().values():
        h.update(p.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()

"""Data parallelism with torch.distributed, as launched by torchrun (NCCL on GPU, gloo on CPU).

The global batch is micro-batch x accumulation x world size; DATE always sees the global batch.
Each rank takes a contiguous slice of every global batch, and only rank 0 writes or prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a data-parallel job (a single process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, value: float) -> float:
        """The mean of ``value`` over all ranks."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor) / self.world_size

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (so that all ranks checkpoint at the same step)."""
        if not self.enabled:
            return flag
        tensor = torch.tensor([int(flag)], dtype=torch.int64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor)

    def broadcast_int(self, value: int) -> int:
        """Rank 0's ``value`` on every rank (so that every rank makes the same choice)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.int64)
        dist.broadcast(tensor, src=0)
        return int(tensor)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init_distributed(device_kind: str) -> DistributedContext:
    """Join the process group torchrun describes in the environment, if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    if device_kind == "tpu":
        raise ValueError(
            "--device tpu under torchrun is not supported: launch TPU runs with one process per "
            "host as the README's 'Cloud TPU' section says"
        )
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return DistributedContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )

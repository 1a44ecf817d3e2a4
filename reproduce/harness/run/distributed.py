"""Data parallelism over several devices, behind one interface the trainer uses unchanged.

Two launchers, one per backend:

- CPU and CUDA: ``torchrun`` starts one process per device; they join a torch.distributed
  process group (gloo on CPU, NCCL on GPU) and the model is wrapped in DistributedDataParallel.
- XLA (``--device tpu``): ``xla/launch.py`` (``torch_xla.launch``) starts one replica per XLA
  device on each host; replicas talk through torch_xla's collectives (``XlaReplicas``).

The global batch is micro-batch x accumulation x world size; DATE always sees the global batch.
Each rank takes a contiguous slice of every global batch, and only rank 0 writes or prints.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from .devices import Device

XLA_LAUNCHER = "python xla/launch.py reproduce/run.py EXPERIMENT --device tpu"


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a data-parallel job (a single process: rank 0 of 1).

    This class is the torch.distributed flavour (torchrun); ``XlaReplicas`` overrides the
    communication for XLA devices.
    """

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

    def exclusive(self) -> contextlib.AbstractContextManager:
        """Held while seeding and building the model: a no-op unless several ranks share this
        process as threads (XLA on TPU v2/v3 and on PJRT's CPU client), which share one global
        RNG."""
        return contextlib.nullcontext()

    def data_parallel(self, module: nn.Module, device: Device) -> nn.Module:
        """``module`` with every rank starting from rank 0's parameters, ready for gradient
        averaging: DistributedDataParallel here (it averages while the last micro-batch's
        backward runs, and the trainer skips that with ``no_sync`` on the others)."""
        if not self.enabled:
            return module
        device_ids = [device.torch_device.index] if device.kind == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)

    def reduce_gradients(self, module: nn.Module) -> None:
        """Average the accumulated gradients over ranks: already done by DDP here."""


class _ThreadedReplicas:
    """The XLA replicas that share one process as threads: PJRT gives each process one TPU v2/v3
    chip (2 cores, so 2 threads) and its CPU client all CPU_NUM_DEVICES devices (one process)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.arrived = threading.Barrier(count)
        self.compiling = threading.Lock()
        self.building = threading.Lock()


_THREADED: dict[int, _ThreadedReplicas] = {}
_THREADED_LOCK = threading.Lock()


def _threaded_replicas(count: int) -> _ThreadedReplicas:
    """This process's one ``_ThreadedReplicas`` (created by the first replica thread to ask)."""
    with _THREADED_LOCK:
        return _THREADED.setdefault(os.getpid(), _ThreadedReplicas(count))


@dataclass(frozen=True)
class XlaReplicas(DistributedContext):
    """Data parallelism over XLA devices with torch_xla's own collectives (``xm.all_reduce``,
    what its ``xla`` torch.distributed backend calls), the way ``xm.optimizer_step`` uses them:
    parameters broadcast from replica 0 once, gradients all-reduced once per step, no
    DistributedDataParallel.

    Why not DDP over the ``xla`` process group: on TPU v2/v3 every process drives 2 cores from 2
    threads, where torch.distributed needs a patched thread-local world that torch_xla calls
    experimental; the collectives below work alike on every TPU generation, on pod slices and
    on PJRT's CPU client. Every graph holding a collective is cut here, right after it is
    traced, so that all replicas run the same graphs in the same order. Replicas must trace the
    same graphs: a number that differs between ranks must reach the device as data (a tensor of
    shape (1,) or more), never as a Python scalar or 0-dim tensor, which may become a constant.
    """

    threads: _ThreadedReplicas | None = field(default=None, repr=False, compare=False)

    def _run_collective(self) -> None:
        """Run the pending graph (it holds a collective) on this replica's device.

        Replicas that are threads of one process need three things here, found on PJRT's CPU
        client (whose in-process collectives abort after 10 s of waiting): they arrive together
        (a barrier); the graph is compiled once per process (under a lock the first thread
        compiles it, the others find it in torch_xla's cache), because each compilation numbers
        the collective anew and replicas only meet on equal numbers; and every thread schedules
        its execution before any of them waits for it (a second barrier), because the end of
        ``torch_xla.sync()`` waits for the collective while holding the GIL.
        """
        import torch_xla

        if self.threads is None:
            torch_xla.sync()
            return
        self.threads.arrived.wait()
        with self.threads.compiling:
            # The first half of torch_xla.sync(): compile (or find) and schedule the graph.
            device = torch_xla._XLAC._xla_get_default_device()
            torch_xla._XLAC._xla_step_marker(device, [], wait=False, reset_scope=True)
        self.threads.arrived.wait()
        torch_xla.sync()  # the graph is empty now; this waits and drops the collective's token

    def _gather(self, values: list[float], dtype: torch.dtype) -> torch.Tensor:
        """Every rank's ``values``: row r of the result holds rank r's. Exact: an all-reduce sum
        of rows that are zero except on their own rank."""
        import torch_xla

        rows = torch.zeros(self.world_size, len(values), dtype=dtype)
        rows[self.rank] = torch.tensor(values, dtype=dtype)
        rows = _all_reduce_sum(rows.to(torch_xla.device()))
        self._run_collective()
        return rows.cpu()

    def mean(self, value: float) -> float:
        # TPUs have no float64: send the value as two float32 words (high part, rest) and add
        # them up on the host in float64.
        high = float(torch.tensor(value, dtype=torch.float32))
        low = value - high if math.isfinite(high) else 0.0
        rows = self._gather([high, low], torch.float32).double()
        return float(rows.sum()) / self.world_size

    def any(self, flag: bool) -> bool:
        return bool(self._gather([int(flag)], torch.int32).any())

    def broadcast_int(self, value: int) -> int:
        if not -(2**31) <= value < 2**31:
            raise ValueError(f"broadcast_int on XLA: {value} does not fit in int32")
        return int(self._gather([value], torch.int32)[0, 0])

    def barrier(self) -> None:
        self._gather([0], torch.int32)

    def exclusive(self) -> contextlib.AbstractContextManager:
        return self.threads.building if self.threads is not None else contextlib.nullcontext()

    def data_parallel(self, module: nn.Module, device: Device) -> nn.Module:
        # Rank 0's parameters and buffers everywhere: a sum over ranks of each rank's values
        # times 1 (rank 0) or 0 (the others); the factor is data, so every rank runs one graph.
        tensors = [*module.parameters(), *module.buffers()]
        for group in _by_dtype(tensors).values():
            # Shape (1,), not a 0-dim tensor: torch_xla may bake a 0-dim 0 or 1 into the graph.
            keep = torch.tensor([int(self.is_main)], dtype=group[0].dtype).to(device.torch_device)
            flat = torch.cat([tensor.detach().reshape(-1) for tensor in group]) * keep
            flat = _all_reduce_sum(flat)
            with torch.no_grad():
                for tensor, chunk in zip(group, _split(flat, group), strict=True):
                    tensor.copy_(chunk.view_as(tensor))
        self._run_collective()
        return module

    def reduce_gradients(self, module: nn.Module) -> None:

        # One flat all-reduce per dtype, whose result replaces the gradients.
        parameters = [parameter for parameter in module.parameters() if parameter.grad is not None]
        for group in _by_dtype(parameters, lambda parameter: parameter.grad.dtype).values():
            flat = torch.cat([parameter.grad.reshape(-1) for parameter in group])
            flat = _all_reduce_sum(flat, scale=1.0 / self.world_size)
            for parameter, chunk in zip(group, _split(flat, group), strict=True):
                parameter.grad = chunk.view_as(parameter)
        self._run_collective()


def _all_reduce_sum(tensor: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The sum of ``tensor`` over all replicas, times ``scale`` (the graph runs at the next
    ``_run_collective``). ``tensor`` must be a fresh one, made for this: an all-reduce in place
    on the gradients themselves (as xm.reduce_gradients does) left a Linear layer's unreduced on
    2 PJRT CPU devices with torch_xla 2.9, while the LSTM's beside it were reduced."""
    import torch_xla.core.xla_model as xm

    xm.all_reduce(xm.REDUCE_SUM, [tensor], scale=scale)
    return tensor


def _by_dtype(
    tensors: list[torch.Tensor],
    dtype_of: Callable[[torch.Tensor], torch.dtype] = lambda tensor: tensor.dtype,
) -> dict[torch.dtype, list[torch.Tensor]]:
    """``tensors`` grouped by dtype, in their order (to be flattened into one tensor each)."""
    groups: dict[torch.dtype, list[torch.Tensor]] = {}
    for tensor in tensors:
        groups.setdefault(dtype_of(tensor), []).append(tensor)
    return groups


def _split(flat: torch.Tensor, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """``flat`` cut back into pieces the sizes of ``tensors``."""
    return flat.split([tensor.numel() for tensor in tensors])


def init_distributed(device_kind: str) -> DistributedContext:
    """Join the job this process belongs to: torchrun's process group (described in the
    environment), the XLA replicas of ``xla/launch.py``, or none (rank 0 of 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if device_kind == "tpu":
        if world_size > 1:
            raise ValueError(
                "--device tpu under torchrun is not supported (torch_xla does not support it "
                f"on TPU v2/v3): start one replica per XLA device with `{XLA_LAUNCHER}` "
                "(README, 'Running on GPUs and Cloud TPU')"
            )
        return _xla_replicas()
    if world_size <= 1:
        return DistributedContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return DistributedContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def _xla_replicas() -> DistributedContext:
    """This replica's place among those ``torch_xla.launch`` started; rank 0 of 1 otherwise."""
    import torch_xla.runtime as xr

    world_size = xr.world_size()  # 1 unless torch_xla.launch set up replication
    if world_size <= 1:
        return DistributedContext()
    per_process = xr.addressable_device_count()
    threads = _threaded_replicas(per_process) if per_process > 1 else None
    return XlaReplicas(
        rank=xr.global_ordinal(),
        world_size=world_size,
        local_rank=xr.local_ordinal(),
        threads=threads,
    )

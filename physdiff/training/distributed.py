"""The one place that makes a training process distributed: an Accelerate ``Accelerator``.

Models stay single-device code; :func:`make_accelerator` wraps them for DDP. The distributed
environment comes from torchrun (``--cpu --procs K`` locally) or from SLURM through
``submitit.helpers.TorchDistributedEnvironment`` (see :mod:`physdiff.training.cluster_job`): both
export ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``.

Careful: on a CUDA build of torch with no GPU, Accelerate silently starts independent single
processes unless told to use the CPU, so with no GPU (or ``PHYSDIFF_CPU=1``) we pass ``cpu=True``:
CPU runs are real gloo DDP.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

CPU_ENV = "PHYSDIFF_CPU"


def want_cpu(cpu: bool | None = None) -> bool:
    if cpu is not None:
        return cpu
    return os.environ.get(CPU_ENV, "") not in ("", "0") or not torch.cuda.is_available()


def make_accelerator(mixed_precision: str = "no", cpu: bool | None = None) -> Any:
    """A fresh Accelerator (DDP when WORLD_SIZE > 1, gloo on CPU, NCCL on GPUs)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs

    use_cpu = want_cpu(cpu)
    if use_cpu:
        os.environ["ACCELERATE_USE_CPU"] = "true"
        if mixed_precision == "fp16":  # fp16 autocast + GradScaler are GPU features
            log.info("[physdiff] train.mixed_precision=fp16 needs a GPU; this CPU run uses fp32 (bf16 works on CPU)")
            mixed_precision = "no"
    # Several stage runs in one process (pipeline, tests): start from a clean Accelerate state,
    # but keep an existing process group (the state reset does not destroy it).
    AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(
        cpu=use_cpu,
        mixed_precision=mixed_precision,
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
    )


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_max(values: list[float], device: torch.device) -> list[float]:
    """Element-wise max over ranks (stop codes, non-finite flags): every rank gets the same answer."""
    t = torch.tensor(values, dtype=torch.float64, device=device)  # (K,)
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def all_reduce_mean(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= dist.get_world_size()
    return float(t[0])


def broadcast_int(value: int, device: torch.device) -> int:
    """Rank 0's integer on every rank (e.g. the token of a checkpoint's temporary folder)."""
    t = torch.tensor([value], dtype=torch.int64, device=device)
    if is_distributed():
        dist.broadcast(t, src=0)
    return int(t[0])


def barrier() -> None:
    if is_distributed():
        dist.barrier()

"""torch.distributed helpers for `torchrun` runs: init, per-rank seeds, gradient averaging.

GAN steps run several forward/backward passes per network (and R1 needs double backward), which
DistributedDataParallel's hooks do not support; so methods keep plain modules and the shared
``Method.apply_gradients`` averages each optimiser's gradients here in one flattened all-reduce.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def init_from_env(device_type: str) -> tuple[int, int, int]:
    """Initialise the process group when launched by torchrun; returns (rank, local_rank, world_size)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 0, 1
    if not is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_world_size()


def shutdown() -> None:
    """Tear the process group down on every rank together: a rank that destroys it while another is still
    using its connections can make that rank's gloo threads abort ("terminate called without an active
    exception", seen under load in the 2-process CPU test)."""
    if is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


@torch.no_grad()
def broadcast_parameters(module: nn.Module) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


@torch.no_grad()
def average_gradients(params: list[nn.Parameter]) -> None:
    """All-reduce the gradients of ``params`` as one flat buffer and divide by the world size.

    Parameters without a gradient on this rank contribute zeros so every rank reduces the same buffer.
    """
    if not is_initialized() or not params:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if not is_initialized():
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


def max_across_ranks(value: float, device: torch.device) -> float:
    """The maximum of a per-rank number (e.g. peak GPU memory) over all ranks; every rank must call it."""
    if not is_initialized():
        return value
    box = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(box, op=dist.ReduceOp.MAX)
    return float(box.item())

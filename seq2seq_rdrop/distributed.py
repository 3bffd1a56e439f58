"""Several processes, one model: `torchrun --nproc_per_node=N train.py ...`.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; we then join a process group (gloo on CPU,
nccl on GPU) and wrap the model in DistributedDataParallel. Each global batch is cut into
WORLD_SIZE shards (one per rank), gradients are averaged, and only rank 0 evaluates, logs and
writes files. Without torchrun every helper here is a no-op, so the single-process path is unchanged.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, obj):
        """rank 0's value of a picklable object, on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def shard(self, items: list) -> list:
        """This rank's part of a global batch (a strided slice, so shards differ by at most one)."""
        return items[self.rank::self.world_size] if self.enabled else items


def pick_device(name: str = "auto", option: str = "device") -> torch.device:
    """auto (CUDA when there is one, else the CPU), cpu, cuda or cuda:N. `option` names the setting in errors:
    ValueError for a name that is none of these, RuntimeError for CUDA on a machine without it."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"{option}={name!r}: allowed values are auto, cpu, cuda, cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"{option}={name} but no CUDA device is available")
    return torch.device(name)


def init_distributed(device_name: str) -> tuple[Dist, str]:
    """Join the process group when launched by torchrun; return the context and the device to use."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist(), device_name
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device_name = f"cuda:{local_rank}"
    else:
        device_name = "cpu"
    return Dist(rank, world_size, local_rank), device_name


class DDPModel(DistributedDataParallel):
    """DDP that still answers the model's own attributes (pad_id, special_ids(), ...), so the
    regularizers work on it unchanged while their forward passes go through DDP's gradient sync."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(model, ctx: Dist, device) -> torch.nn.Module:
    if not ctx.enabled:
        return model
    ids = [torch.device(device).index] if torch.device(device).type == "cuda" else None
    return DDPModel(model, device_ids=ids)


def shutdown(ctx: Dist) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()

"""The torch device the scores compute on: `--device` resolved, and the default. torch is imported on use only, and
not at all to learn that a Linux machine has no GPU (`gpu_possible`)."""

from __future__ import annotations

import sys
from pathlib import Path

from recommender.errors import UserError

# what a GPU that torch can use brings on Linux: the NVIDIA driver (its /proc entry, its device nodes), WSL2's GPU
# paravirtualisation, AMD's compute driver (ROCm builds of torch answer torch.cuda too)
GPU_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/dev/kfd")


def gpu_possible() -> bool:
    """False where torch cannot see a GPU: on Linux, none of ``GPU_PATHS`` exists. True elsewhere, and where one
    exists: torch is asked then. Importing torch only to hear "no CUDA" costs seconds (`rank` on cached features)."""
    return not sys.platform.startswith("linux") or any(Path(path).exists() for path in GPU_PATHS)


def cuda_available() -> bool:
    """Whether torch sees a CUDA device, asked only where `gpu_possible` allows one."""
    if not gpu_possible():
        return False
    import torch

    return torch.cuda.is_available()


def default_device() -> str:
    """'cuda' when torch sees a CUDA device, else 'cpu'."""
    return "cuda" if cuda_available() else "cpu"


def resolve_device(choice: str) -> str | None:
    """The torch device that `--device choice` computes on, or None for the numpy path.

    auto: 'cuda' when torch sees a CUDA device, else None; cpu: None; cuda or cuda:N: checked to exist;
    torch:cpu: the torch kernels on the CPU (the GPU path's numbers, checkable without a GPU).
    """
    if choice == "cpu":
        return None
    if choice == "torch:cpu":
        return "cpu"
    if choice == "auto":
        return "cuda" if cuda_available() else None
    if not cuda_available():
        raise UserError(f"--device {choice}: torch sees no CUDA device here; use --device auto or cpu")
    import torch

    index = int(choice.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise UserError(f"--device {choice}: torch sees {torch.cuda.device_count()} CUDA device(s) (0 to "
                        f"{torch.cuda.device_count() - 1})")
    return choice

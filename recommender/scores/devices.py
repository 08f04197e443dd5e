"""The torch device the scores compute on: `--device` resolved, and the default. torch is imported on use only."""

from __future__ import annotations

from recommender.errors import UserError


def default_device() -> str:
    """'cuda' when torch sees a CUDA device, else 'cpu'."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(choice: str) -> str | None:
    """The torch device that `--device choice` computes on, or None for the numpy path.

    auto: 'cuda' when torch sees a CUDA device, else None; cpu: None; cuda or cuda:N: checked to exist;
    torch:cpu: the torch kernels on the CPU (the GPU path's numbers, checkable without a GPU).
    """
    if choice == "cpu":
        return None
    if choice == "torch:cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if choice == "auto":
        return "cuda" if available else None
    if not available:
        raise UserError(f"--device {choice}: torch sees no CUDA device here; use --device auto or cpu")
    index = int(choice.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise UserError(f"--device {choice}: torch sees {torch.cuda.device_count()} CUDA device(s) (0 to "
                        f"{torch.cuda.device_count() - 1})")
    return choice

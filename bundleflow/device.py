"""Device selection. Hardware never changes hyper-parameters, only where tensors live."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Return a torch device: ``"auto"`` picks CUDA when available, else CPU."""
    if isinstance(name, torch.device):
        return name
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from bundleflow.errors import InputError

        raise InputError(f"device {name!r} requested but CUDA is not available")
    return dev

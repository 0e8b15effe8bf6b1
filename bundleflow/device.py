"""Device selection. Hardware never changes hyper-parameters, only where tensors live."""

from __future__ import annotations

import ctypes
import os
import sys

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


_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> bool:
    """Keep freed memory in glibc's heap instead of returning it to the OS after every step.

    A Stage 2 step on CPU allocates and frees a few hundred MB of tensors (activations
    ``[J*D, hidden]``, values ``[U, B]``). With glibc's default, adaptive settings most of
    them are mapped and unmapped again each step, and the page faults cost about a fifth
    of the step. This sets ``M_MMAP_THRESHOLD`` to 32 MB (larger blocks are still mapped)
    and ``M_TRIM_THRESHOLD`` to 1 GB, once per process. It changes speed and the
    resident memory kept between steps, never results. Opt out with the environment
    variable ``BUNDLEFLOW_TUNE_MALLOC=0``. Returns whether the settings were applied
    (False off glibc, or when opted out).
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    if os.environ.get("BUNDLEFLOW_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 32 << 20) == 1 and libc.mallopt(m_trim_threshold, 1 << 30) == 1
    except (OSError, AttributeError):
        return False
    _ALLOCATOR_TUNED = ok
    return ok

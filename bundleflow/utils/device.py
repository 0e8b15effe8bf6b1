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
    from bundleflow.errors import InputError

    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from exc
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} requested but CUDA is not available")
    return dev


def machine_facts(device: torch.device) -> dict:
    """What a timing depends on: device name, CPU threads torch uses, torch version."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"device": name, "threads": torch.get_num_threads(), "torch": torch.__version__}


_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> bool:
    """Keep freed memory in glibc's heap between Stage 2 steps instead of unmapping it.

    A Stage 2 step allocates and frees a few hundred MB of tensors (activations
    ``[J*D, hidden]``, values ``[U, B]``). With glibc's adaptive defaults most are mapped
    and unmapped again every step, and the page faults cost about a fifth of the step.
    This sets ``M_MMAP_THRESHOLD`` to 32 MB (larger blocks are still mapped) and
    ``M_TRIM_THRESHOLD`` to 1 GB, once per process (the trainer calls it on CPU). Speed
    and the memory kept between steps change, never results. Opt out with the
    environment variable ``BUNDLEFLOW_TUNE_MALLOC=0``. Returns whether it was applied.
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
    except (OSError, AttributeError):  # not glibc
        return False
    _ALLOCATOR_TUNED = ok
    return ok


def available_memory_bytes() -> int | None:
    """Memory the process may still use: ``MemAvailable`` of ``/proc/meminfo`` (Linux), else
    the physical memory; ``None`` where neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None

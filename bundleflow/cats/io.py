"""Read and write CATS valuations.

Two formats:

1. The reference ``.npz`` files in ``shared/cats/`` (one XOR valuation per row)::

       atoms    bool    [N, max_atoms, n_items]   padding rows all False
       values   float32 [N, max_atoms]            0 for padding
       n_atoms  int32   [N]                       real atoms per valuation

   plus provenance arrays that are kept as metadata.

2. The CATS text bid file written by the original C++ suite::

       % comment lines
       goods 50
       bids 123
       dummy 10
       0   123.45  3 5 7 51  #
       ...

   Each bid line is ``id price good good ... #``. Goods numbered ``>= goods``
   are dummy goods: every bid holding the same dummy good belongs to one bidder
   (an XOR of that bidder's bids); a bid without a dummy good is a bidder of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bundleflow.errors import InputError
from bundleflow.utils.files import atomic_write
from bundleflow.valuations.base import _check_values
from bundleflow.valuations.xor import XORValuation

_REQUIRED = ("atoms", "values", "n_atoms")


def _valuation_file(path: str | Path) -> Path:
    """``path`` if it is a regular file; else an :class:`InputError` saying what it is."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a valuation file")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: is not a regular file (a device or pipe); give a valuation file")
    return path


def _check_npz_sizes(path: Path) -> None:
    """Before numpy allocates anything: each array's header must declare no more bytes than its
    zip member holds, and all arrays together must fit in the memory available (a 600-byte file
    declaring shape (1e10, 2, 2) is refused here, naming the array)."""
    import zipfile

    from bundleflow.utils.device import available_memory_bytes

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return  # not a zip archive: np.load says so below
    total = 0
    with zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            try:
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(fh, max_header_size=10_000)  # the header only
            except Exception:
                continue  # np.load reports a malformed member below
            declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
            name = info.filename.removesuffix(".npy")
            if declared > info.file_size:
                raise InputError(
                    f"{path}: array {name!r} declares shape {tuple(shape)} ({declared} bytes) "
                    f"but holds {info.file_size} bytes"
                )
            total += declared
    have = available_memory_bytes()
    if have is not None and total > have:
        raise InputError(f"{path}: its arrays need {total / 1e9:.3g} GB, more than the {have / 1e9:.3g} GB available")


def load_cats_npz(path: str | Path, limit: int | None = None) -> tuple[XORValuation, dict]:
    """Load a CATS reference npz file.

    Returns ``(valuation, metadata)``; metadata holds ``n_items``, ``distribution``
    and any other scalar provenance field, and ``instance`` (``[N]`` int64, each row's CATS
    instance) when the file has it. ``limit`` keeps the first rows only.
    """
    path = _valuation_file(path)
    _check_npz_sizes(path)
    try:
        data = np.load(path, allow_pickle=False)
        arrays = {k: data[k] for k in data.files}
    except ValueError as exc:
        if "Object arrays" in str(exc):  # numpy's hint would suggest unpickling: refused
            raise InputError(
                f"{path}: refused: holds Python object arrays (loading them could run code); "
                "a CATS npz holds numeric arrays only"
            ) from None
        if "allow_pickle" in str(exc):  # not a zip archive: numpy took it for a pickle
            raise InputError(
                f"{path}: not a readable npz file (not a zip archive of arrays; pickles are never loaded)"
            ) from None
        raise InputError(f"{path}: not a readable npz file ({exc})") from exc
    except Exception as exc:
        raise InputError(f"{path}: not a readable npz file ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in _REQUIRED if k not in arrays]
    if missing:
        raise InputError(f"{path}: missing array(s) {missing}; a CATS npz needs {list(_REQUIRED)}")
    atoms, values, n_atoms = arrays["atoms"], arrays["values"], arrays["n_atoms"]
    for key, arr in (("atoms", atoms), ("values", values), ("n_atoms", n_atoms)):
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise InputError(f"{path}: '{key}' must be numeric, got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.complexfloating):
            raise InputError(f"{path}: '{key}' must hold real numbers, got dtype {arr.dtype}")
    if not (
        np.issubdtype(n_atoms.dtype, np.integer)
        or (np.isfinite(n_atoms).all() and (n_atoms == np.round(n_atoms)).all())
    ):
        raise InputError(f"{path}: 'n_atoms' must hold whole numbers")
    n_atoms = n_atoms.astype(np.int64)
    if atoms.ndim != 3:
        raise InputError(f"{path}: 'atoms' must be [N, max_atoms, n_items], got shape {atoms.shape}")
    if atoms.shape[1] == 0 or atoms.shape[2] == 0:
        raise InputError(
            f"{path}: 'atoms' has shape {atoms.shape}: every bidder needs at least one atom slot over at least one item"
        )
    if values.shape != atoms.shape[:2]:
        raise InputError(f"{path}: 'values' shape {values.shape} does not match atoms {atoms.shape[:2]}")
    if n_atoms.shape != atoms.shape[:1]:
        raise InputError(f"{path}: 'n_atoms' shape {n_atoms.shape} does not match N={atoms.shape[0]}")
    if atoms.dtype != np.bool_:
        if not np.isin(atoms, (0, 1)).all():
            raise InputError(f"{path}: 'atoms' must be boolean (0/1)")
        atoms = atoms.astype(bool)
    values = values.astype(np.float64)
    _check_values(torch.from_numpy(values), f"{path}: 'values'")
    k = atoms.shape[1]
    if (n_atoms < 0).any() or (n_atoms > k).any():
        raise InputError(f"{path}: 'n_atoms' must lie in [0, {k}]")
    pad = np.arange(k)[None, :] >= n_atoms[:, None]
    if atoms[pad].any() or (values[pad] != 0).any():
        raise InputError(f"{path}: padding atoms (index >= n_atoms) must be empty with value 0")
    if "n_items" in arrays and int(arrays["n_items"]) != atoms.shape[2]:
        raise InputError(f"{path}: n_items={int(arrays['n_items'])} but atoms have {atoms.shape[2]} items")
    instance = arrays.get("instance")
    if instance is not None:  # the CATS instance of each row (bidders of one instance share goods)
        if instance.shape != atoms.shape[:1] or not np.issubdtype(instance.dtype, np.integer):
            raise InputError(f"{path}: 'instance' must hold one whole number per row ({atoms.shape[0]})")
    if limit is not None:
        atoms, values = atoms[:limit], values[:limit]
    meta = {"path": str(path), "n_items": int(atoms.shape[2]), "n_valuations": int(atoms.shape[0])}
    for key, arr in arrays.items():
        if key not in _REQUIRED and arr.ndim == 0:
            meta[key] = arr.item()
    if instance is not None:
        meta["instance"] = instance[: atoms.shape[0]].astype(np.int64)
    return XORValuation(torch.from_numpy(atoms), torch.from_numpy(values)), meta


def save_cats_npz(path: str | Path, valuation: XORValuation, **metadata) -> Path:
    """Write ``valuation`` in the reference npz format (atomically); scalars in ``metadata`` are stored too."""
    atoms = valuation.atoms.cpu().numpy().astype(bool)
    values = valuation.values.cpu().numpy().astype(np.float32)
    real = atoms.any(-1) | (values > 0)
    # compact real atoms to the front so that padding sits at index >= n_atoms
    order = np.argsort(~real, axis=1, kind="stable")
    atoms = np.take_along_axis(atoms, order[:, :, None], axis=1)
    values = np.take_along_axis(values, order, axis=1)
    n_atoms = real.sum(1).astype(np.int32)
    extra: dict = {k: np.asarray(v) for k, v in metadata.items()}
    extra.setdefault("n_items", np.asarray(valuation.n_items))

    def _w(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, atoms=atoms, values=values, n_atoms=n_atoms, **extra)

    return atomic_write(path, _w)


def generate_npz(
    path: str | Path,
    distribution: str,
    n_items: int,
    n: int,
    seed: int,
    stream: str = "auto",
    bidders_per_instance: int = 1,
    progress=None,
) -> XORValuation:
    """Draw ``n`` CATS valuations (:func:`bundleflow.cats.generate`) and write them to ``path`` in
    the reference format (atomically) with their provenance: distribution, seed, generator, each
    row's private-value kind and instance, and the rand48 ``seeds`` / ``seeds2`` that regenerate it."""
    from bundleflow.cats.generator import generate

    if bidders_per_instance > 1 and n % bidders_per_instance:
        raise InputError(
            f"--n {n} is not a multiple of --bidders-per-instance {bidders_per_instance}: the last instance "
            f"would have {n % bidders_per_instance} bidders; use --n {n - n % bidders_per_instance} or "
            f"{n + bidders_per_instance - n % bidders_per_instance}"
        )
    v, meta = generate(
        distribution,
        n_items,
        n,
        seed=seed,
        bidders_per_instance=bidders_per_instance,
        stream=stream,
        progress=progress,
    )
    extra = {k: meta[k] for k in ("seeds", "seeds2") if k in meta}
    save_cats_npz(
        path,
        v,
        private_values=meta["private_values"],
        instance=meta["instance"],
        distribution=distribution,
        seed=seed,
        generator="bundleflow.cats",
        **extra,
    )
    return v


def parse_cats_bids(text: str, source: str = "<text>") -> XORValuation:
    """Parse a CATS bid file into one XOR valuation per bidder (see module doc)."""
    n_goods = n_bids = n_dummy = None
    bids: list[tuple[float, list[int], int | None]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("%", 1)[0].strip()
        if not line:
            continue
        head = line.split()
        key = head[0].lower()
        if key in ("goods", "bids", "dummy"):
            if len(head) != 2 or not head[1].isdigit():
                raise InputError(f"{source}:{lineno}: expected '{key} <non-negative integer>', got {raw.strip()!r}")
            val = int(head[1])
            if key == "goods":
                n_goods = val
            elif key == "bids":
                n_bids = val
            else:
                n_dummy = val
            continue
        if n_goods is None:
            raise InputError(f"{source}:{lineno}: bid line before the 'goods N' header")
        toks = line.split()
        if toks[-1] != "#":
            raise InputError(f"{source}:{lineno}: bid line must end with '#'")
        toks = toks[:-1]
        if len(toks) < 3:
            raise InputError(f"{source}:{lineno}: bid line needs an id, a price and at least one good")
        try:
            price = float(toks[1])
            goods = [int(t) for t in toks[2:]]
        except ValueError as exc:
            raise InputError(f"{source}:{lineno}: non-numeric field ({exc})") from exc
        if not np.isfinite(price) or price < 0:
            raise InputError(f"{source}:{lineno}: price must be finite and non-negative, got {toks[1]}")
        limit = n_goods + (n_dummy or 0)
        bad = [g for g in goods if g < 0 or g >= limit]
        if bad:
            raise InputError(f"{source}:{lineno}: good(s) {bad} out of range [0, {limit})")
        real = sorted({g for g in goods if g < n_goods})
        dummies = {g for g in goods if g >= n_goods}
        if len(dummies) > 1:
            raise InputError(f"{source}:{lineno}: a bid may hold at most one dummy good, got {sorted(dummies)}")
        if not real:
            raise InputError(f"{source}:{lineno}: bid holds no real good")
        bids.append((price, real, dummies.pop() if dummies else None))
    if n_goods is None:
        raise InputError(f"{source}: missing 'goods N' header")
    if n_goods < 1:
        raise InputError(f"{source}: 'goods' must be at least 1")
    if n_bids is not None and n_bids != len(bids):
        raise InputError(f"{source}: header says {n_bids} bids but the file holds {len(bids)}")
    if not bids:
        raise InputError(f"{source}: no bids")
    groups: dict = {}
    for i, (_, _, dummy) in enumerate(bids):
        groups.setdefault(("d", dummy) if dummy is not None else ("b", i), []).append(i)
    bidders = list(groups.values())
    k = max(len(g) for g in bidders)
    atoms = np.zeros((len(bidders), k, n_goods), dtype=bool)
    values = np.zeros((len(bidders), k), dtype=np.float64)
    for b, members in enumerate(bidders):
        for j, i in enumerate(members):
            price, real, _ = bids[i]
            atoms[b, j, real] = True
            values[b, j] = price
    return XORValuation(torch.from_numpy(atoms), torch.from_numpy(values))


def load_cats_bids(path: str | Path) -> XORValuation:
    """Read a CATS text bid file (see :func:`parse_cats_bids`)."""
    path = _valuation_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text file ({exc})") from exc
    return parse_cats_bids(text, source=str(path))


def load_valuations(path: str | Path, limit: int | None = None) -> XORValuation:
    """Load valuations from a ``.npz`` reference file or a CATS text bid file, by extension."""
    path = Path(path)
    if path.suffix == ".npz":
        return load_cats_npz(path, limit=limit)[0]
    v = load_cats_bids(path)
    return v.subset(torch.arange(min(len(v), limit))) if limit is not None else v

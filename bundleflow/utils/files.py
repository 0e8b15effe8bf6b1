"""Atomic file writes (a file is either the old version or the complete new one) and JSON-lines reading."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[str], None], suffix: str = "") -> Path:
    """Call ``write(tmp_path)`` then atomically move the temporary file onto ``path``.

    If ``write`` raises, ``path`` is left untouched and the temporary file removed.
    """
    from bundleflow.errors import InputError

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    except OSError as exc:  # a read-only or full folder: name the file meant, not the temporary one
        raise InputError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a result file gets the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    def _w(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write(path, _w)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_safe(obj):
    """``obj`` with every NaN or infinite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def json_dumps(obj, **kwargs) -> str:
    """Strict JSON (``NaN``/``inf`` written as ``null``)."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_text(path, json_dumps(obj, indent=2, sort_keys=True) + "\n")


def writable_dir(path: str | Path) -> Path:
    """Create folder ``path`` if needed and check that files can be created in it, before any work.

    Raises :class:`InputError` (one line, naming the path) when it is a file, lies under a
    file, or cannot be written.
    """
    from bundleflow.errors import InputError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise InputError(f"{path}: cannot write in this folder ({exc.strerror or exc})") from exc
    return path


def append_line(path: str | Path, line: str) -> None:
    """Append ``line`` (a newline added) to the file ``path``, never through a symbolic link: a
    link there is removed (its target untouched) and a real file started in its place."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    if path.is_symlink():
        path.unlink()
    fd = os.open(path, flags, 0o666)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def own_folder(path: str | Path) -> Path:
    """The folder ``path`` that a command creates inside its own output folder (a run's
    ``report/``, a design's family folder), never followed elsewhere: a symbolic link there is
    removed (its target untouched) and a real folder made in its place, so nothing outside the
    output folder is written. Files are safe already: :func:`atomic_write` replaces a link
    itself, never the file it points to."""
    from bundleflow.errors import InputError

    path = Path(path)
    if path.is_symlink():
        path.unlink()
    elif path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a folder; move it away")
    path.mkdir(exist_ok=True)
    return path


def writable_file(path: str | Path, overwrite: bool = True) -> Path:
    """Check that file ``path`` can be (over)written, before any work: not a folder, parent writable."""
    from bundleflow.errors import InputError

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: is not a regular file (a device or pipe); give a file name")
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; pass --force to overwrite it")
    writable_dir(path.parent)
    return path


def read_json(path: str | Path, what: str = "JSON file"):
    """The JSON document in the file ``path``; an :class:`InputError` naming the file when it is
    missing, not UTF-8, not JSON, or nested too deeply to read (a crafted 100,000-deep array)."""
    from bundleflow.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what}")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be a {what}") from None


def read_jsonl(path: str | Path) -> list[dict]:
    """The records of a JSON-lines file (blank lines skipped)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def load_tensors(path: str | Path, device="cpu", what: str = "checkpoint"):
    """``torch.load`` restricted to tensors, numbers, strings, lists and dicts (no unpickling of code).

    Raises :class:`InputError` naming ``path``; the message never suggests ``weights_only=False``
    (a file that needs it is refused: loading it could run arbitrary code).
    """
    import pickle

    import torch

    from bundleflow.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what}")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():  # a reference to code (class, function): what unpickling would run
            raise InputError(
                f"{path}: refused: the {what} holds Python objects other than tensors, numbers, "
                "strings, lists and dicts (loading it could run code)"
            ) from None
        raise InputError(f"{path}: not a bundleflow {what} (unreadable: {type(exc).__name__})") from None
    except Exception as exc:
        raise InputError(f"{path}: not a bundleflow {what} (unreadable: {type(exc).__name__})") from exc

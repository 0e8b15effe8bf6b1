"""Exceptions raised for bad user input. Messages name the offending field/file."""


class BundleflowError(Exception):
    """Base class of every error bundleflow raises on purpose."""


class InputError(BundleflowError, ValueError):
    """Malformed or inconsistent input: NaN, negative values, mismatched shapes, bad files."""


MAX_MESSAGE = 600  # characters of one error line; user text beyond it (a 100 kB override) is elided


def _one_line(text: str) -> str:
    """``text`` on one line, at most :data:`MAX_MESSAGE` characters: a longer one keeps its start
    and end (where the file or field and the verdict are) around a count of what was left out."""
    line = " ".join(str(text).split())
    if len(line) <= MAX_MESSAGE:
        return line
    head, tail = line[: MAX_MESSAGE // 2], line[-MAX_MESSAGE // 4 :]
    return f"{head} ... [{len(line) - len(head) - len(tail)} characters left out] ... {tail}"


def error_message(exc: BaseException) -> str:
    """One line for any failure: ours as written, the OS's with the file it concerns, the rest by type."""
    if isinstance(exc, BundleflowError):
        return _one_line(str(exc))
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return _one_line(f"{where}{exc.strerror or exc}")
    if isinstance(exc, MemoryError):
        return "out of memory; try a smaller batch, menu or data set"
    if isinstance(exc, RuntimeError) and "unexpected pos" in str(exc):  # torch.save on a full disk
        return "could not write a file (is the disk full?); files already written were left as they were"
    return _one_line(f"unexpected {type(exc).__name__}: {exc} (run `bundleflow --debug ...` for the traceback)")

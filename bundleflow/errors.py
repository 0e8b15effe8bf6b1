"""Exceptions raised for bad user input. Messages name the offending field/file."""


class BundleflowError(Exception):
    """Base class of every error bundleflow raises on purpose."""


class InputError(BundleflowError, ValueError):
    """Malformed or inconsistent input: NaN, negative values, mismatched shapes, bad files."""

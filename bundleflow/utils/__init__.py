"""Infrastructure every layer may use: devices, atomic files, progress bars. Imports nothing above
:mod:`bundleflow.errors`."""

__all__: list[str] = []

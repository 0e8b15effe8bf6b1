"""Multi-bidder mechanisms (GemNet, arXiv:2406.07428; issue 14): not implemented yet.

A multi-bidder mechanism goes here, one module per model. It shares the valuations
(:mod:`bundleflow.valuations`, one :class:`~bundleflow.valuations.Valuation` per bidder),
exact evaluation, the oracles (:mod:`bundleflow.oracles`), run folders and the CLI
(:mod:`bundleflow.experiments`) with the single-bidder menus in :mod:`bundleflow.mechanisms`.
"""

__all__: list[str] = []

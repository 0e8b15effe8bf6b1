"""CATS (Leyton-Brown, Pearson, Shoham 2000) in Python, and CATS files.

- :mod:`.generator`: :func:`generate` (regions, arbitrary, matching, scheduling, paths).
- :mod:`.regions_arbitrary`, :mod:`.matching`, :mod:`.scheduling`, :mod:`.paths`: one distribution each.
- :mod:`.rand48`: CATS's own ``drand48`` stream, which regenerates the reference files exactly.
- :mod:`.io`: reference ``.npz`` files and CATS text bid files.
"""

from bundleflow.cats.generator import DISTRIBUTIONS, generate
from bundleflow.cats.io import load_cats_bids, load_cats_npz, load_valuations, parse_cats_bids, save_cats_npz
from bundleflow.cats.rand48 import Rand48Stream
from bundleflow.cats.regions_arbitrary import CatsParams

__all__ = [
    "DISTRIBUTIONS",
    "CatsParams",
    "Rand48Stream",
    "generate",
    "load_cats_bids",
    "load_cats_npz",
    "load_valuations",
    "parse_cats_bids",
    "save_cats_npz",
]

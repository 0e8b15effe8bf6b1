"""Summary statistics of a batch of XOR valuations (``bundleflow data stats``).

The same statistics as the reference ``stats.json`` of ``../shared/cats`` plus the
per-item frequency and the revenue of the two simple mechanisms, so a generated file
can be compared with a reference one line by line.
"""

from __future__ import annotations

from bundleflow.valuations.xor import XORValuation


def valuation_stats(v: XORValuation, revenue: bool = True, progress=None) -> dict:
    """Statistics of ``v``: atoms per bidder, items per atom, atom values, ``E[max atom value]``,
    per-item frequency (share of bidders with the item in some atom), and, if ``revenue``,
    grand-bundling and item-pricing revenue fitted on ``v`` itself. ``progress``: optional
    ``advance(n)`` callback, called once per item and sweep of the item-pricing search."""
    from bundleflow.baselines.bundling import grand_bundling
    from bundleflow.baselines.items import item_pricing

    real = v.atoms.any(-1) | (v.values > 0)
    n_atoms = real.sum(1).double()
    sizes = v.atoms.sum(-1)[real].double()
    vals = v.values[real].double()
    vmax = v.grand_value().double()
    freq = (v.atoms & real[..., None]).any(1).double().mean(0)
    out = {
        "n_valuations": len(v),
        "n_items": v.n_items,
        "atoms_per_val_mean": float(n_atoms.mean()),
        "atoms_per_val_min": int(n_atoms.min()),
        "atoms_per_val_max": int(n_atoms.max()),
        "items_per_atom_mean": float(sizes.mean()),
        "items_per_atom_min": int(sizes.min()),
        "items_per_atom_max": int(sizes.max()),
        "value_mean": float(vals.mean()),
        "value_std": float(vals.std()),
        "E_max_atom_value": float(vmax.mean()),
        "std_max_atom_value": float(vmax.std()),
        "item_frequency": [round(float(f), 4) for f in freq],
    }
    if revenue:
        out["grand_bundling_revenue"] = grand_bundling(v).revenue
        out["item_pricing_revenue"] = item_pricing(v, progress=progress).revenue
    return out

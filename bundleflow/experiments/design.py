"""`bundleflow design DATA`: fit every applicable mechanism family, keep the best on validation.

The user's bidders are shuffled (seeded) and split into training, validation and held-out
parts; every family of :data:`bundleflow.experiments.families.FAMILIES` that applies is fitted
on training (selecting on validation where it learns), and the mechanism with the highest
exact **validation** revenue is the recommendation (ties: the earlier, simpler family). Every
family is then evaluated exactly on the held-out bidders; the winner's gain over each family
is paired on the same held-out bidders, with its standard error.

One run folder::

    design.json          the inputs (data file, split, seed, families, budget); a rerun must match
    <family>/mechanism.json, <family>/fit.json   each family's mechanism and fit facts
    metrics.jsonl        one line per family as it finishes
    summary.json, results.md, design.png

Resumable: a family whose ``fit.json`` exists is read back, not refitted. ``budget_s`` is the
training time of the whole portfolio: each learned family gets the remaining budget divided by
the learned families still to fit (the exact baselines are not budgeted; they take seconds).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from bundleflow.errors import InputError
from bundleflow.experiments.families import FAMILIES, FitContext, family
from bundleflow.mechanisms.mechanism import (
    describe_mechanism,
    mechanism_from_json,
    mechanism_payments,
    mechanism_to_json,
)
from bundleflow.utils.files import (
    append_line,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    json_dumps,
    own_folder,
    read_json,
    writable_dir,
)
from bundleflow.utils.stats import mean_and_se
from bundleflow.valuations.base import Valuation

DEFAULT_SPLIT = (0.75, 0.10, 0.15)  # the paper preset's 15,000 / 2,000 / 3,000 of 20,000


def split_bidders(v: Valuation, split: tuple[float, ...], seed: int) -> tuple[Valuation, ...]:
    """``(train, val, test)``: ``v`` shuffled with ``seed``, cut at the shares ``split``."""
    if len(split) != 3 or any(not 0 < s < 1 for s in split) or abs(sum(split) - 1) > 1e-9:
        raise InputError(f"--split must be three shares in (0, 1) summing to 1, got {split}")
    n = len(v)
    n_train, n_val = int(round(split[0] * n)), int(round(split[1] * n))
    if min(n_train, n_val, n - n_train - n_val) < 1:
        raise InputError(f"{n} bidders are too few to split into train/validation/held-out {split}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return (
        v.subset(order[:n_train]),
        v.subset(order[n_train : n_train + n_val]),
        v.subset(order[n_train + n_val :]),
    )


def _check_same_inputs(path: Path, inputs: dict) -> None:
    if not path.is_file():
        atomic_write_json(path, inputs)
        return
    before = read_json(path, "design file")
    if not isinstance(before, dict) or before != json.loads(json_dumps(inputs)):
        before = before if isinstance(before, dict) else {}
        changed = sorted(k for k in set(before) | set(inputs) if before.get(k) != inputs.get(k))
        raise InputError(
            f"{path.parent} holds a design run with different inputs ({', '.join(changed)}); "
            "use another --out or the same options"
        )


def _read_family(folder: Path) -> tuple[Any, dict] | None:
    fit_file, mech_file = folder / "fit.json", folder / "mechanism.json"
    if not fit_file.is_file():
        return None
    try:
        facts = read_json(fit_file, "family result")
        mech = mechanism_from_json(read_json(mech_file, "mechanism file"), str(mech_file))
    except InputError as exc:
        raise InputError(f"{exc}; delete {folder} to refit the family") from None
    return mech, facts


def run_design(
    valuations: Valuation,
    out: str | Path,
    data_name: str,
    families: list[str] | None = None,
    budget_s: float = 600.0,
    seed: int = 0,
    split: tuple[float, ...] = DEFAULT_SPLIT,
    device: str = "cpu",
    progress: bool = False,
    log=print,
) -> dict:
    """Fit, select and evaluate (module doc) into the folder ``out``; returns the summary dict."""
    if not budget_s > 0:
        raise InputError(f"--budget must be a positive number of seconds, got {budget_s}")
    names = list(families) if families else list(FAMILIES)
    for n in names:
        family(n)
    if len(set(names)) != len(names):
        raise InputError(f"--families names a family twice: {','.join(names)}")
    train, val, test = split_bidders(valuations, split, seed)
    skipped = {n: r for n in names if (r := FAMILIES[n].applies_to(train)) is not None}
    names = [n for n in names if n not in skipped]
    if not names:
        raise InputError(f"no family applies to {data_name}: " + "; ".join(f"{k} {v}" for k, v in skipped.items()))
    out = writable_dir(out)
    inputs = {
        "data": data_name,
        "bidders": len(valuations),
        "items": valuations.n_items,
        "split": list(split),
        "seed": seed,
        "families": names,
        "budget_s": budget_s,
    }
    _check_same_inputs(out / "design.json", inputs)
    for n, why in skipped.items():
        log(f"skip {n}: {why}")
    t0 = time.perf_counter()
    ctx = FitContext(seed=seed, device=device, progress=progress)
    results: dict[str, dict] = {}
    mechanisms: dict[str, Any] = {}
    spent = 0.0
    for i, n in enumerate(names):
        fam = FAMILIES[n]
        folder = out / n
        done = _read_family(folder)
        if done is not None:
            mechanisms[n], results[n] = done
            spent += results[n]["seconds"] if fam.learned else 0.0
            log(f"{n}: read back from {folder}")
            continue
        learned_left = sum(FAMILIES[m].learned for m in names[i:])
        ctx.budget_s = max(1.0, (budget_s - spent) / max(1, learned_left)) if fam.learned else 0.0
        log(f"{n}: fitting" + (f" (budget {ctx.budget_s:.0f} s)" if fam.learned else ""))
        fitted = fam.fit(train, val, ctx)
        spent += fitted.seconds if fam.learned else 0.0
        facts = {
            "family": n,
            "summary": fam.summary,
            "learned": fam.learned,
            "val_revenue": fitted.val_revenue,
            "seconds": fitted.seconds,
            "details": fitted.details,
        }
        own_folder(folder)  # a link there is replaced, never followed
        atomic_write_json(folder / "mechanism.json", mechanism_to_json(fitted.mechanism))
        atomic_write_json(folder / "fit.json", facts)  # last: its presence marks the family done
        append_line(out / "metrics.jsonl", json_dumps(facts))
        mechanisms[n], results[n] = fitted.mechanism, facts
    winner = max(names, key=lambda n: (results[n]["val_revenue"], -names.index(n)))
    pay = {n: mechanism_payments(mechanisms[n], test) for n in names}
    rows = []
    for n in names:
        rev, se = mean_and_se(pay[n])
        gain, gain_se = mean_and_se(pay[winner] - pay[n])
        rows.append(
            {
                "family": n,
                "learned": results[n]["learned"],
                "val_revenue": results[n]["val_revenue"],
                "test_revenue": rev,
                "test_revenue_se": se,
                "winner_gain": gain,
                "winner_gain_se": gain_se,
                "seconds": results[n]["seconds"],
                "describe": describe_mechanism(mechanisms[n]),
                **({"details": results[n]["details"]} if results[n]["details"] else {}),
            }
        )
    summary = {
        **inputs,
        "n_train": len(train),
        "n_val": len(val),
        "n_test": len(test),
        "skipped": skipped,
        "winner": winner,
        "winner_mechanism": str(out / winner / "mechanism.json"),
        "rows": rows,
        "wall_seconds": time.perf_counter() - t0,  # this sitting: fits not read back, and evaluation
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "results.md", design_markdown(summary))
    summary["plot"] = plot_design(summary, out / "design.png")
    return summary


def design_markdown(summary: dict) -> str:
    """The summary as a markdown table (revenues exact; held-out unless labelled validation)."""
    w = summary["winner"]
    lines = [
        f"# design: {summary['data']}",
        "",
        f"{summary['n_train']} training / {summary['n_val']} validation / {summary['n_test']} held-out bidders, "
        f"{summary['items']} items, seed {summary['seed']}. Chosen on validation revenue: **{w}**. "
        f"Gain: the winner's held-out revenue minus the family's, paired on the same bidders (+- s.e.).",
        "",
        "| family | validation revenue | held-out revenue | winner's gain | seconds |",
        "|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        gain = "winner" if r["family"] == w else f"{r['winner_gain']:+.4g} +- {r['winner_gain_se']:.2g}"
        lines.append(
            f"| {r['family']} | {r['val_revenue']:.4f} | {r['test_revenue']:.4f} +- {r['test_revenue_se']:.2g} "
            f"| {gain} | {r['seconds']:.1f} |"
        )
    for n, why in summary.get("skipped", {}).items():
        lines.append(f"| {n} | skipped: {why} | | | |")
    return "\n".join(lines) + "\n"


def plot_design(summary: dict, path: Path) -> bool:
    """Held-out revenue +- 1.96 s.e. per family (points: the axis need not start at 0), the
    winner highlighted; whether it was written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.4))
    y = list(range(len(rows)))
    for i, r in zip(y, rows, strict=True):
        ax.errorbar(
            r["test_revenue"],
            i,
            xerr=1.96 * r["test_revenue_se"],
            fmt="o",
            color="tab:orange" if r["family"] == summary["winner"] else "tab:blue",
            capsize=3,
        )
    ax.set_yticks(y, [r["family"] for r in rows])
    ax.invert_yaxis()
    lo = min(r["test_revenue"] - 2 * r["test_revenue_se"] for r in rows)
    hi = max(r["test_revenue"] + 2 * r["test_revenue_se"] for r in rows)
    ax.set_xlim(max(0.0, lo - 0.1 * (hi - lo)), hi + 0.05 * (hi - lo))
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel("held-out revenue (exact, +- 1.96 s.e.)")
    ax.set_title(f"{summary['data']}: chosen on validation: {summary['winner']}")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return True

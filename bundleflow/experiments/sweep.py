"""Sweeps (``bundleflow sweep``): one base config, axes of values and seeds; every run is an
ordinary run folder, and the results are aggregated over seeds.

A sweep is a base config (a YAML file and/or ``key=value`` overrides), axes ``key: [v1, v2,
...]`` whose cartesian product gives the *cells*, and seeds. Run ``(cell, seed)`` is the base
config with the cell's values and ``menu.seed = seed`` (and ``flow.seed = seed`` for the
single-bidder menus), trained by :func:`~bundleflow.experiments.runner.run_training` or
:func:`~bundleflow.experiments.multi_runner.run_multi_training` into ``OUT/<cell>/seed<k>``.
The data (``data.seed``) is the same for every seed, so the seeds share their held-out
bidders. A re-launched sweep reads back the runs that finished (their ``summary.json`` and an
equal config), resumes the interrupted ones from their checkpoints, and runs the rest; a run
that fails is reported with its one-line error and does not stop the others.

Aggregation, per cell: the mean over seeds of the held-out revenue, its standard error across
seeds (``std / sqrt(seeds)``, 0 with one seed) and the mean of the held-out standard errors
within seeds; ``results.json`` and ``results.md`` in ``OUT``, and with one numeric axis a plot
of revenue against it with error bars (``revenue.png``).

Executors: ``local`` runs the runs one after another in this process; ``ray`` submits each
as a Ray task (``pip install 'bundleflow[ray]'``) to a local Ray started on demand or to the
cluster at ``address``, asking ``cpus_per_task`` CPUs (and one GPU when the config's device
is ``cuda``). Either way a run uses ``cpus_per_task`` torch threads, so the same seeds give the
same menus, bit for bit on CPU, whichever executor ran them.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bundleflow.errors import InputError, error_message
from bundleflow.utils.files import atomic_write_json, atomic_write_text
from bundleflow.utils.yaml_files import read_yaml

EXECUTORS = ("local", "ray")


@dataclass
class SweepSpec:
    """A sweep: base config file and overrides, axes (dotted key -> YAML values as text),
    seeds."""

    config: Path | None = None
    base: list[str] = field(default_factory=list)
    axes: dict[str, list[str]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])


@dataclass
class SweepRun:
    """One run of a sweep: its cell's name and values, seed, overrides and folder name."""

    cell: str
    values: dict[str, str]
    seed: int
    overrides: list[str]
    folder: str


MAX_SEEDS = 10_000  # runs of one sweep cell; more is a typo (0-100000000 grew to 8.8 GB before)


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"0,3,7"`` -> ``[0, 3, 7]`` (distinct, >= 0)."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise InputError(f"seeds: {text!r} is not like 0-4 or 0,3,7")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b < a:
            raise InputError(f"seeds: {part!r} runs backwards")
        if len(seeds) + b - a + 1 > MAX_SEEDS:
            raise InputError(f"seeds: {str(text)[:60]!r} gives more than {MAX_SEEDS} seeds")
        seeds.extend(range(a, b + 1))
    if len(set(seeds)) != len(seeds):
        raise InputError(f"seeds: {text!r} repeats a seed")
    return seeds


def parse_axis(text: str) -> tuple[str, list[str]]:
    """``"menu.lr=0.01,0.02"`` -> ``("menu.lr", ["0.01", "0.02"])`` (values split at commas
    outside brackets, so ``gemnet.hidden=[64,64],[32]`` has two values)."""
    if "=" not in text:
        raise InputError(f"axis {text!r} must look like key.sub=v1,v2")
    key, raw = (s.strip() for s in text.split("=", 1))
    values, depth, cur = [], 0, ""
    for ch in raw:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            values.append(cur.strip())
            cur = ""
        else:
            cur += ch
    values.append(cur.strip())
    if not key or any(v == "" for v in values):
        raise InputError(f"axis {text!r}: a key and non-empty values are needed")
    if len(set(values)) != len(values):
        raise InputError(f"axis {key}: a value is repeated")
    return key, values


def load_sweep_file(path: str | Path) -> SweepSpec:
    """A sweep YAML file: ``config`` (a run config path, relative to the file), ``base`` (a
    mapping of dotted keys or nested sections to values), ``axes`` (dotted key -> list of
    values) and ``seeds`` (``"0-4"``, or a list)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such sweep file")
    raw = read_yaml(p) or {}
    if not isinstance(raw, dict) or not set(raw) <= {"config", "base", "axes", "seeds"}:
        raise InputError(f"{p}: a sweep is a mapping of config, base, axes and seeds")
    spec = SweepSpec()
    if raw.get("config") is not None:
        spec.config = (p.parent / str(raw["config"])).resolve()
    base = raw.get("base") or {}
    if not isinstance(base, dict):
        raise InputError(f"{p}: base must be a mapping of settings")
    spec.base = [f"{k}={_dump(v)}" for k, v in _flatten(base).items()]
    axes = raw.get("axes") or {}
    if not isinstance(axes, dict) or not all(isinstance(v, list) and v for v in axes.values()):
        raise InputError(f"{p}: axes must map each key to a non-empty list of values")
    spec.axes = {str(k): [_dump(x) for x in v] for k, v in axes.items()}
    seeds = raw.get("seeds", 0)
    spec.seeds = parse_seeds(",".join(str(s) for s in seeds) if isinstance(seeds, list) else str(seeds))
    return spec


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _dump(v) -> str:
    """A YAML value as override text (``yaml.safe_load`` reads it back)."""
    if isinstance(v, str):
        return v
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


def _slug(values: dict[str, str]) -> str:
    if not values:
        return "base"
    parts = [f"{k.split('.')[-1]}={v}" for k, v in values.items()]
    return re.sub(r"[^A-Za-z0-9=._+-]", "_", "__".join(parts))


def plan(spec: SweepSpec) -> list[SweepRun]:
    """The runs of ``spec``, cell by cell, seeds within (configs checked before anything runs)."""
    from bundleflow.experiments.config import load_config

    if not spec.seeds:
        raise InputError("a sweep needs at least one seed")
    keys = list(spec.axes)
    runs, slugs = [], set()
    for combo in itertools.product(*[spec.axes[k] for k in keys]):
        values = dict(zip(keys, combo, strict=True))
        cell = _slug(values)
        if cell in slugs:
            raise InputError(f"two cells of the sweep share the folder name {cell}")
        slugs.add(cell)
        for seed in spec.seeds:
            over = [*spec.base, *(f"{k}={v}" for k, v in values.items()), f"menu.seed={seed}"]
            cfg = load_config(spec.config, over)
            if cfg.menu.model != "gemnet":
                over.append(f"flow.seed={seed}")
                load_config(spec.config, over)
            runs.append(SweepRun(cell, values, seed, over, f"{cell}/seed{seed}"))
    return runs


def run_one(config: str | None, overrides: list[str], out: str, threads: int, report: bool = True) -> dict:
    """Train one run into ``out`` with ``threads`` torch threads (resuming or reading it back;
    ``report``: write the single-bidder report at the end); returns ``{"summary": ...}`` or
    ``{"error": one line}``. A module-level function, so that a Ray worker can run it."""
    import torch

    from bundleflow.experiments.config import load_config
    from bundleflow.experiments.runner import holds_config

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cfg = load_config(config, overrides)
        folder = Path(out)
        summary = folder / "summary.json"
        if summary.is_file() and holds_config(folder, cfg):
            return {"summary": json.loads(summary.read_text(encoding="utf-8")), "read_back": True}
        if cfg.menu.model == "gemnet":
            from bundleflow.experiments.multi_runner import run_multi_training

            result = run_multi_training(cfg, folder, resume=True, progress=False, log=lambda *a, **k: None)
        else:
            from bundleflow.experiments.runner import run_training

            result = run_training(
                cfg, folder, resume=True, progress=False, log=lambda *a, **k: None, write_report_at_end=report
            )
        return {"summary": result, "read_back": False}
    except Exception as exc:  # a failed run is reported, the others go on
        return {"error": error_message(exc)}
    finally:
        torch.set_num_threads(before)


def run_cells(
    cells: list[tuple[str, list[str], Path]],
    executor: str = "local",
    address: str | None = None,
    cpus_per_task: int = 1,
    report: bool = True,
    config: str | None = None,
    log=print,
    progress: bool = True,
) -> list[dict]:
    """Run ``(label, overrides, folder)`` cells (each read back if finished, resumed if
    interrupted) with ``executor``; returns :func:`run_one`'s result for each, in order."""
    from bundleflow.experiments.config import load_config

    if executor not in EXECUTORS:
        raise InputError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if cpus_per_task < 1:
        raise InputError(f"cpus_per_task must be >= 1, got {cpus_per_task}")
    jobs = [(label, (config, over, str(folder), cpus_per_task, report)) for label, over, folder in cells]
    if executor == "local" or not jobs:
        return _execute_local(jobs, log, progress)
    gpus = 1.0 if load_config(config, cells[0][1]).device.startswith("cuda") else 0.0
    return _execute_ray(jobs, log, progress, address, cpus_per_task, gpus)


def _execute_local(jobs, log, progress: bool) -> list[dict]:
    from bundleflow.utils.progress import progress_bar

    out = []
    with progress_bar("sweep", len(jobs), enabled=progress) as advance:
        for label, args in jobs:
            res = run_one(*args)
            log(f"{label}: {_status(res)}")
            out.append(res)
            advance(1)
    return out


def _execute_ray(jobs, log, progress: bool, address: str | None, cpus: int, gpus: float) -> list[dict]:
    try:
        import ray
    except ImportError as exc:
        raise InputError("the ray executor needs Ray: pip install 'bundleflow[ray]'") from exc
    from bundleflow.utils.progress import progress_bar

    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = True
    try:
        task = ray.remote(num_cpus=cpus, num_gpus=gpus)(run_one)
        futures = [task.remote(*args) for _, args in jobs]
        out: list[dict] = [{} for _ in jobs]
        index = {f: k for k, f in enumerate(futures)}
        pending = list(futures)
        with progress_bar("sweep (ray)", len(jobs), enabled=progress) as advance:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                k = index[ready[0]]
                try:
                    out[k] = ray.get(ready[0])
                except Exception as exc:  # the task itself died (worker lost, out of memory)
                    out[k] = {"error": f"ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"}
                log(f"{jobs[k][0]}: {_status(out[k])}")
                advance(1)
        return out
    finally:
        if started:
            ray.shutdown()


def _status(res: dict) -> str:
    if "error" in res:
        return f"failed: {res['error']}"
    return "read back" if res.get("read_back") else "done"


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    executor: str = "local",
    address: str | None = None,
    cpus_per_task: int = 1,
    log=print,
    progress: bool = True,
) -> dict:
    """Run (or read back) every run of ``spec`` into ``out`` and aggregate over seeds; writes
    ``results.json``, ``results.md`` and, with one numeric axis, ``revenue.png``."""
    from bundleflow.utils.files import writable_dir

    if executor not in EXECUTORS:
        raise InputError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    runs = plan(spec)
    out = writable_dir(out)
    config = str(spec.config) if spec.config is not None else None
    jobs = [(r.folder, r.overrides, out / r.folder) for r in runs]
    results = run_cells(jobs, executor, address, cpus_per_task, True, config, log, progress)
    rows = []
    for r, res in zip(runs, results, strict=True):
        row: dict = {"cell": r.cell, **{f"axis:{k}": v for k, v in r.values.items()}, "seed": r.seed}
        if "error" in res:
            row["error"] = res["error"]
        else:
            learned = res["summary"]["learned"]
            row.update({"test_revenue": learned["test_revenue"], "test_revenue_se": learned["test_revenue_se"]})
        rows.append(row)
    cells = aggregate(rows, list(spec.axes))
    summary = {
        "axes": spec.axes,
        "seeds": spec.seeds,
        "base": spec.base,
        "config": config,
        "executor": executor,
        "runs": rows,
        "cells": cells,
    }
    atomic_write_json(out / "results.json", summary)
    atomic_write_text(out / "results.md", markdown(summary))
    numeric = [k for k in spec.axes if all(_number(v) is not None for v in spec.axes[k])]
    if len(spec.axes) == 1 and numeric:
        plot_cells(cells, numeric[0], out / "revenue.png")
    return summary


def _number(v: str) -> float | None:
    try:
        x = float(v)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def aggregate(rows: list[dict], axes: list[str]) -> list[dict]:
    """Per cell: seeds run and failed, mean held-out revenue over seeds, its s.e. across
    seeds, and the mean within-seed s.e."""
    out = []
    for cell in dict.fromkeys(r["cell"] for r in rows):
        mine = [r for r in rows if r["cell"] == cell]
        ok = [r for r in mine if "error" not in r]
        x = [r["test_revenue"] for r in ok]
        k = len(x)
        mean = sum(x) / k if k else None
        sd = math.sqrt(sum((v - mean) ** 2 for v in x) / (k - 1)) if k > 1 and mean is not None else None
        out.append(
            {
                "cell": cell,
                **{f"axis:{a}": mine[0][f"axis:{a}"] for a in axes},
                "seeds": k,
                "failed": len(mine) - k,
                "test_revenue_mean": mean,
                "test_revenue_se_across_seeds": None if sd is None else sd / math.sqrt(k),  # None: one seed
                "test_revenue_se_within_seed": sum(r["test_revenue_se"] for r in ok) / k if k else None,
            }
        )
    return out


def markdown(summary: dict) -> str:
    """``results.md``: one row per cell, then the failed runs with their errors."""
    axes = list(summary["axes"])
    head = ["cell", *axes, "seeds", "held-out revenue (mean)", "± s.e. across seeds", "mean s.e. within a seed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in summary["cells"]:
        mean = c["test_revenue_mean"]
        cells = [
            c["cell"],
            *(c[f"axis:{a}"] for a in axes),
            f"{c['seeds']}" + (f" ({c['failed']} failed)" if c["failed"] else ""),
        ]
        if mean is None:
            cells += ["", "", ""]
        else:
            cells += [
                f"{mean:.4f}",
                "-" if c["test_revenue_se_across_seeds"] is None else f"{c['test_revenue_se_across_seeds']:.4f}",
                f"{c['test_revenue_se_within_seed']:.4f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in summary["runs"] if "error" in r]
    if failed:
        lines += ["", "Failed runs:", ""]
        lines += [f"- {r['cell']}/seed{r['seed']}: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def plot_cells(cells: list[dict], axis: str, path: Path) -> None:
    """Mean held-out revenue against the numeric ``axis``, error bars +- 1 s.e. across seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bundleflow.utils.files import atomic_write

    pts = sorted(
        (float(c[f"axis:{axis}"]), c["test_revenue_mean"], c["test_revenue_se_across_seeds"] or 0.0)
        for c in cells
        if c["test_revenue_mean"] is not None
    )
    if not pts:
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3)
    ax.set_xlabel(axis)
    ax.set_ylabel("held-out revenue (mean over seeds)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)

"""Benchmark suite: settings x methods, exact held-out revenue, time, and a plot.

``run_bench`` trains every learned method (BundleFlow, BundleFlow with a la carte item
prices, RochetNet, Bundle-RochetNet)
through :func:`bundleflow.experiments.run_training` with a wall-clock budget per run, adds
the baselines (grand bundling, item pricing, atom menu), the welfare bound, the LP
optimum where the training sample is small enough and the known optimum where one
is known, and writes ``results.json``, ``results.md`` and ``revenue_vs_time.png``.
Revenue is mean +- standard error over held-out valuations (hard evaluation). With
``seeds``, every learned cell is trained once per seed (``menu.seed`` and ``flow.seed``; the
data are the same) and its row gives the mean over seeds, the standard error across seeds and
the mean held-out standard error within a seed.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from bundleflow.errors import InputError
from bundleflow.utils.files import atomic_write, atomic_write_json, atomic_write_text, read_jsonl

# learned method -> extra config overrides
LEARNED_OVERRIDES = {
    "bundleflow": ["menu.model=bundleflow"],
    "bundleflow_mixed": ["menu.model=bundleflow", "menu.outside=item_prices"],  # + a la carte item prices
    "rochetnet": ["menu.model=rochetnet"],
    "bundle_rochetnet": ["menu.model=bundle_rochetnet"],
}
LEARNED = tuple(LEARNED_OVERRIDES)
BASELINES = ("grand_bundling", "item_pricing", "atom_menu", "welfare_bound", "lp_optimum")
# families of the registry (bundleflow.experiments.families) that have no run folder of their
# own: fitted in memory through the registry's interface, a row each like the learned cells
REGISTRY_METHODS = ("tariffs",)
METHODS = LEARNED + REGISTRY_METHODS + BASELINES

# known optima of the infinite-sample problem
KNOWN_OPTIMUM = {"additive_2": 0.5491, "unit_demand_2": 0.3843}
# known-answer checks: (setting, method) -> least acceptable held-out revenue
CHECKS = {("additive_2", "rochetnet"): 0.545, ("unit_demand_2", "rochetnet"): 0.380}

_TWO_ITEM_MENU = [
    "menu.n_elements=128",
    "menu.steps=3000",
    "menu.batch=4096",
    "menu.log_every=250",
    "menu.tau_start=0.02",
    "menu.tau_end=0.001",
]


def _data_path(overrides: list[str]) -> Path | None:
    """The ``data.path`` of a setting's overrides (``None`` for generated data)."""
    for o in overrides:
        if o.startswith("data.path="):
            return Path(o[len("data.path=") :])
    return None


def default_cats_dir() -> Path:
    """``../shared/cats`` next to the repository (where the reference files live)."""
    return Path(__file__).resolve().parents[3] / "shared" / "cats"


def settings(cats_dir: Path | None = None) -> dict[str, list[str]]:
    """Setting name -> config overrides (data and menu size)."""
    cats_dir = Path(cats_dir) if cats_dir else default_cats_dir()
    out: dict[str, list[str]] = {}
    for dist in ("regions", "arbitrary"):
        for m in (50, 100, 150):
            out[f"cats_{dist}_{m}"] = [
                "data.kind=file",
                f"data.path={cats_dir / f'{dist}_{m}_single.npz'}",
                "data.n_train=3000",
                "data.n_val=1000",
                "data.n_test=1000",
                "menu.n_elements=128",
                "menu.n_support=4",
                "menu.steps=2000",
                "flow.steps=3000",
            ]
    out["uniform_m50"] = [
        "data.n_items=50",
        "data.n_atoms=20",
        "data.q=0.46",
        "data.n_train=8000",
        "data.n_val=2000",
        "data.n_test=10000",
        "menu.n_elements=128",
        "menu.steps=600",
        "flow.steps=3000",
    ]
    out["uniform_m2"] = [
        "data.n_items=2",
        "data.n_atoms=5",
        "data.q=0.5",
        "data.n_train=300",
        "data.n_val=300",
        "data.n_test=5000",
        "menu.n_elements=16",
        "menu.steps=800",
        "flow.steps=1000",
    ]
    out["additive_2"] = [
        "data.kind=additive",
        "data.n_items=2",
        "data.n_train=20000",
        "data.n_val=5000",
        "data.n_test=100000",
        "flow.steps=1000",
    ] + _TWO_ITEM_MENU
    out["unit_demand_2"] = [
        "data.kind=unit_demand",
        "data.n_items=2",
        "data.n_train=20000",
        "data.n_val=5000",
        "data.n_test=100000",
        "flow.steps=1000",
    ] + _TWO_ITEM_MENU
    return out


# The paper's single-bidder comparison (Wang, Jiang, Parkes 2025, Table 1): CATS regions and
# arbitrary at 50, 100 and 150 items, pure BundleFlow with J=5000 and D=8. Valuations are drawn
# with CATS's own random stream (rand48, one single-bidder run per valuation) into
# ``data_dir`` once: the reference files' 5,000 rows are too few for 2,000+ held-out bidders
# beside a training sample that a 5,000-element menu does not overfit.
PAPER_SPLIT = (15000, 2000, 3000)  # training, validation, held-out valuations
PAPER_QUICK_ROWS = 1000  # rows generated for --quick (QUICK's split fits in them)
PAPER_SEED = 1
PAPER_BUDGET_S = 1200.0  # default wall-clock budget per learned run


def _paper_rows(quick: bool) -> int:
    return PAPER_QUICK_ROWS if quick else sum(PAPER_SPLIT)


def paper_data_file(data_dir: Path, distribution: str, n_items: int, quick: bool = False) -> Path:
    return Path(data_dir) / f"{distribution}_{n_items}_{_paper_rows(quick)}_rand48_seed{PAPER_SEED}.npz"


def paper_settings(data_dir: Path, quick: bool = False) -> dict[str, list[str]]:
    """Setting name -> config overrides of the ``paper`` preset (data files: :func:`ensure_paper_data`)."""
    out: dict[str, list[str]] = {}
    for dist in ("regions", "arbitrary"):
        for m in (50, 100, 150):
            out[f"paper_{dist}_{m}"] = [
                "data.kind=file",
                f"data.path={paper_data_file(data_dir, dist, m, quick)}",
                f"data.n_train={PAPER_SPLIT[0]}",
                f"data.n_val={PAPER_SPLIT[1]}",
                f"data.n_test={PAPER_SPLIT[2]}",
                "menu.n_elements=5000",
                "menu.n_support=8",
                "menu.batch=128",
                "menu.steps=100000",  # the time budget ends training
                "menu.log_every=50",
                "flow.steps=3000",
            ]
    return out


def ensure_paper_data(setting: str, data_dir: Path, quick: bool = False, log=print, progress: bool = True) -> Path:
    """The valuation file of ``paper`` setting ``setting`` (``paper_<distribution>_<items>``), drawn
    with CATS's rand48 stream unless it exists (:func:`paper_data_file`)."""
    from bundleflow.cats.io import generate_npz
    from bundleflow.utils.progress import progress_bar

    _, dist, m = setting.split("_")
    path = paper_data_file(data_dir, dist, int(m), quick)
    if path.is_file():
        return path
    n = _paper_rows(quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with progress_bar(f"generating {path.name} (CATS rand48 stream)", n, enabled=progress) as advance:
        generate_npz(path, dist, int(m), n, PAPER_SEED, stream="rand48", progress=advance)
    log(f"generated {path} ({n} {dist} valuations, {m} items, {time.perf_counter() - t0:.0f} s)")
    return path


PRESETS = ("default", "paper")


QUICK = [
    "data.n_train=300",
    "data.n_val=200",
    "data.n_test=500",
    "menu.steps=30",
    "menu.log_every=10",
    "menu.n_elements=8",
    "menu.batch=128",
    "flow.steps=50",
    "flow.hidden=16",
]


def steps_to_fraction(metrics: list[dict], frac: float = 0.99) -> int | None:
    """First logged step whose validation hard revenue reaches ``frac`` of the final one."""
    if not metrics:
        return None
    final = metrics[-1]["hard_revenue"]
    for m in metrics:
        if m["hard_revenue"] >= frac * final:
            return int(m["step"])
    return int(metrics[-1]["step"])


def _read_metrics(path: Path) -> list[dict]:
    return read_jsonl(path) if path.is_file() else []


def _curve(metrics: list[dict]) -> list[tuple[int, float, float]]:
    """``(step, seconds, validation hard revenue)`` of each logged step, for the plots."""
    return [(m["step"], m["seconds"], m["hard_revenue"]) for m in metrics]


def finished_cell(folder: Path, cfg, resume: bool, log, label: str) -> dict | None:
    """The ``summary.json`` of a bench cell's run folder when ``resume`` and it finished with
    the same config (logged as read back), else ``None``: the cell is still to run."""
    from bundleflow.experiments.runner import holds_config

    if resume and (folder / "summary.json").is_file() and holds_config(folder, cfg):
        log(f"{label} done earlier, read from {folder}")
        return json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    return None


def check_names(names, known, what: str) -> None:
    """A one-line :class:`InputError` for the first of ``names`` not in ``known`` (a ``what``)."""
    for x in names:
        if x not in known:
            raise InputError(f"unknown {what} {x!r}; known: {', '.join(known)}")


def check_budget(budget_s: float) -> None:
    """A one-line :class:`InputError` unless ``budget_s`` is a positive number of seconds."""
    if budget_s <= 0 or not math.isfinite(budget_s):
        raise InputError(f"budget must be a positive number of seconds, got {budget_s}")


def check_seeds(seeds: list[int] | None) -> None:
    """A one-line :class:`InputError` unless ``seeds`` is ``None`` or distinct integers >= 0."""
    if seeds is not None and (not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0):
        raise InputError(f"seeds must be distinct non-negative integers, got {seeds}")


def run_bench(
    out: str | Path,
    setting_names: list[str] | None = None,
    methods: list[str] | None = None,
    budget_s: float = 600.0,
    quick: bool = False,
    cats_dir: Path | None = None,
    log=print,
    preset: str = "default",
    data_dir: Path | None = None,
    resume: bool = True,
    progress: bool = False,
    executor: str = "local",
    address: str | None = None,
    cpus_per_task: int = 1,
    seeds: list[int] | None = None,
) -> dict:
    """Run ``setting_names x methods`` of ``preset`` into ``out`` and return the results dict.

    One run folder per learned cell, ``out/<setting>/<method>``. With ``resume``, a cell whose
    folder holds a finished run of the same config is read back, an interrupted one continues
    from its checkpoint (and its time budget from the seconds already spent), and a folder
    with a different config is an error; without, every cell starts afresh. ``paper``: the
    valuation files are drawn into ``data_dir`` (default ``out/data``) first where missing.
    ``executor="ray"``: the learned cells first run as Ray tasks (:func:`.sweep.run_cells`,
    ``cpus_per_task`` CPUs each, on a local Ray or the cluster at ``address``), then are read
    back like the cells of an earlier sitting. ``seeds``: each learned cell once per seed, in
    ``out/<setting>/<method>/seed<k>`` (:func:`over_seeds` combines them into the cell's row).
    """
    from bundleflow.experiments.baseline_table import baseline_rows
    from bundleflow.experiments.config import load_config
    from bundleflow.experiments.data import make_data
    from bundleflow.experiments.runner import run_training

    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    paper = preset == "paper"
    data_dir = Path(data_dir) if data_dir is not None else Path(out) / "data"
    table = paper_settings(data_dir, quick) if paper else settings(cats_dir)
    explicit = bool(setting_names)
    setting_names = setting_names or list(table)
    methods = methods or list(METHODS)
    check_names(setting_names, table, "setting")
    check_names(methods, METHODS, "method")
    check_budget(budget_s)
    check_seeds(seeds)
    runs_of: list[int | None] = [None] if seeds is None else list(seeds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    missing = {}
    for name in setting_names if not paper else ():
        path = _data_path(table[name])
        if path is not None and not quick and not path.is_file():
            missing[name] = path
    if missing and (explicit or cats_dir is not None):
        raise InputError(
            f"missing CATS reference file(s): {', '.join(str(p) for p in missing.values())}; "
            "pass --cats-dir with the folder that holds them"
        )
    for name, path in missing.items():  # default run without the shared data: say so, run the rest
        log(f"skip {name}: {path} not found")
    setting_names = [n for n in setting_names if n not in missing]
    if not setting_names:
        raise InputError("no setting left to run")
    if executor != "local":
        from bundleflow.experiments.sweep import run_cells

        if not resume:
            raise InputError(f"--executor {executor} reads its cells back after the tasks: leave out --no-resume")
        cells = []
        for name in setting_names:
            if paper:
                ensure_paper_data(name, data_dir, quick, log, progress)
            ov = table[name] + (QUICK if quick else [])
            for method in [m for m in methods if m in LEARNED]:
                for seed in runs_of:
                    cells.append(
                        (
                            cell_label(name, method, seed),
                            ov + cell_overrides(method, budget_s, seed),
                            cell_folder(out, name, method, seed),
                        )
                    )
        for (label, _, _), res in zip(
            cells,
            run_cells(cells, executor, address, cpus_per_task, not quick, log=log, progress=progress),
            strict=True,
        ):
            if "error" in res:
                raise InputError(f"{label}: {res['error']}")
    rows: list[dict] = []
    curves: dict[str, dict[str, list[list[tuple[int, float, float]]]]] = {}
    for name in setting_names:
        if paper:
            ensure_paper_data(name, data_dir, quick, log, progress)
        ov = table[name] + (QUICK if quick else [])
        cfg = load_config(None, ov)
        train, val, test = make_data(cfg)
        curves[name] = {}
        for method in [m for m in methods if m in LEARNED]:
            per_seed = []
            curves[name][method] = []
            for seed in runs_of:
                mcfg = load_config(None, ov + cell_overrides(method, budget_s, seed))
                folder = cell_folder(out, name, method, seed)
                label = cell_label(name, method, seed)
                t0 = time.perf_counter()
                run = finished_cell(folder, mcfg, resume, log, label)
                if run is None:
                    log(f"{label}: training (budget {budget_s:g} s)")
                    run = run_training(
                        mcfg,
                        folder,
                        resume=resume,
                        progress=progress,
                        log=lambda *_: None,
                        write_report_at_end=not quick,
                    )
                wall = time.perf_counter() - t0
                metrics = _read_metrics(folder / "metrics.jsonl")
                curves[name][method].append(_curve(metrics))
                L = run["learned"]
                per_seed.append(
                    {
                        "setting": name,
                        "method": method,
                        "test_revenue": L["test_revenue"],
                        "test_revenue_se": L["test_revenue_se"],
                        "train_seconds": run["train_seconds"],
                        "wall_seconds": wall,
                        "steps": L["steps_done"],
                        "steps_to_99pct": steps_to_fraction(metrics),
                        "stopped_by_time_budget": L["stopped_by_time_budget"],
                        # paired, on the same held-out bidders (absent in runs written before it was)
                        "gain_over_item_pricing": L.get("test_gain_over_item_pricing"),
                        "gain_over_item_pricing_se": L.get("test_gain_over_item_pricing_se"),
                        "machine": run.get("machine"),
                    }
                )
            rows.append(per_seed[0] if seeds is None else over_seeds(per_seed, seeds))
        _paired_learned(rows, name, out, test, seeds)
        rows += _registry_rows(
            name, [m for m in methods if m in REGISTRY_METHODS], train, val, test, budget_s, seeds, log
        )
        wanted = [m for m in methods if m in BASELINES]
        if wanted:
            lp = "lp_optimum" in wanted and train.n_items <= 3 and len(train) <= 400
            for r in baseline_rows(train, test, atom_menu_size=min(cfg.menu.init_atoms, cfg.menu.n_elements), lp=lp):
                if r["method"] in wanted:
                    rows.append(
                        {
                            "setting": name,
                            "method": r["method"],
                            "test_revenue": r["test_revenue"],
                            "test_revenue_se": r.get("test_revenue_se"),
                            "train_seconds": r["seconds"],
                            "wall_seconds": r["seconds"],
                            "steps": None,
                            "steps_to_99pct": None,
                            "stopped_by_time_budget": False,
                        }
                    )
        if name in KNOWN_OPTIMUM:
            rows.append(
                {
                    "setting": name,
                    "method": "known_optimum",
                    "test_revenue": KNOWN_OPTIMUM[name],
                    "test_revenue_se": 0.0,
                    "train_seconds": 0.0,
                    "wall_seconds": 0.0,
                    "steps": None,
                    "steps_to_99pct": None,
                    "stopped_by_time_budget": False,
                }
            )
    checks = []
    for (setting, method), least in CHECKS.items():
        got = [r["test_revenue"] for r in rows if r["setting"] == setting and r["method"] == method]
        if got and not quick:
            checks.append(
                {"setting": setting, "method": method, "revenue": got[0], "at_least": least, "passed": got[0] >= least}
            )
    results = {
        "preset": preset,
        "budget_s": budget_s,
        "quick": quick,
        "seeds": seeds,
        "rows": rows,
        "checks": checks,
    }
    this_sitting = {(r["setting"], r["method"]) for r in rows}
    rows = joined_rows(out / "results.json", results, log)
    earlier = [r for r in rows if (r["setting"], r["method"]) not in this_sitting]
    results["rows"] = rows
    for r in earlier:  # curves of cells finished in an earlier sitting, from their run folders
        if r["method"] in LEARNED:
            folders = [cell_folder(out, r["setting"], r["method"], k) for k in runs_of]
            found = [_curve(m) for m in (_read_metrics(f / "metrics.jsonl") for f in folders) if m]
            if found:
                curves.setdefault(r["setting"], {})[r["method"]] = found
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "results.md", markdown(results))
    results["plot"] = plot_revenue_vs_time(curves, rows, out / "revenue_vs_time.png")
    plot_revenue_vs_time(curves, rows, out / "revenue_vs_steps.png", x="steps")
    return results


def _paired_learned(rows: list[dict], setting: str, out: Path, test, seeds: list[int] | None = None) -> None:
    """Add to ``setting``'s ``bundleflow`` row its paired held-out gain over ``rochetnet``
    (``gain_over_rochetnet``, ``_se``): both kept menus (``menu.json``) evaluated exactly on
    the same held-out bidders; with ``seeds``, seed k against seed k, combined as
    :func:`over_seeds` combines revenues. Nothing is added unless both rows and menus are there."""
    from bundleflow.mechanisms.menu import evaluate_menu, read_menu
    from bundleflow.training.learning import paired_gain

    by = {r["method"]: r for r in rows if r["setting"] == setting}
    if not {"bundleflow", "rochetnet"} <= by.keys():
        return
    gains = []
    runs_of: list[int | None] = [None] if seeds is None else list(seeds)
    for seed in runs_of:
        paths = {m: cell_folder(out, setting, m, seed) / "menu.json" for m in ("bundleflow", "rochetnet")}
        if not all(p.is_file() for p in paths.values()):
            return
        pay = {}
        for m, p in paths.items():
            pay[m] = evaluate_menu(read_menu(p), test).payment
        gains.append(paired_gain(pay["bundleflow"], pay["rochetnet"]))
    row = by["bundleflow"]
    row["gain_over_rochetnet"], row["gain_over_rochetnet_se"], across = combine_seeds(
        [g for g, _ in gains], [s for _, s in gains]
    )
    if seeds is not None:
        row["gain_over_rochetnet_se_across_seeds"] = across
        for entry, (g, se) in zip(row["per_seed"], gains, strict=True):
            entry["gain_over_rochetnet"], entry["gain_over_rochetnet_se"] = g, se


def _registry_rows(
    setting: str, methods: list[str], train, val, test, budget_s: float, seeds: list[int] | None, log
) -> list[dict]:
    """One row per family of :data:`REGISTRY_METHODS` in ``methods`` that applies to ``train``:
    fitted through the registry (:data:`bundleflow.experiments.families.FAMILIES`, validation
    ``val``, ``budget_s`` seconds, once per seed), exact held-out revenue and its paired gain
    over exact item pricing fitted on the same ``train`` (seed 0's fit, as the baseline row)."""
    from bundleflow.baselines.items import item_pricing
    from bundleflow.experiments.families import FAMILIES, FitContext
    from bundleflow.mechanisms.mechanism import mechanism_payments
    from bundleflow.utils.stats import mean_and_se

    rows: list[dict] = []
    item_pay = None
    for method in methods:
        why = FAMILIES[method].applies_to(train)
        if why is not None:
            log(f"{setting}: skip {method} ({why})")
            continue
        if item_pay is None:
            item_pay = item_pricing(train).payments(test)
        per_seed = []
        for seed in [0] if seeds is None else seeds:
            log(cell_label(setting, method, None if seeds is None else seed) + ": fitting")
            t0 = time.perf_counter()
            fitted = FAMILIES[method].fit(train, val, FitContext(seed=seed, budget_s=budget_s))
            pay = mechanism_payments(fitted.mechanism, test)
            rev, se = mean_and_se(pay)
            gain, gain_se = mean_and_se(pay - item_pay)
            per_seed.append(
                {
                    "setting": setting,
                    "method": method,
                    "test_revenue": rev,
                    "test_revenue_se": se,
                    "train_seconds": fitted.seconds,
                    "wall_seconds": time.perf_counter() - t0,
                    "steps": None,
                    "steps_to_99pct": None,
                    "stopped_by_time_budget": False,
                    "gain_over_item_pricing": gain,
                    "gain_over_item_pricing_se": gain_se,
                }
            )
        rows.append(per_seed[0] if seeds is None else over_seeds(per_seed, seeds))
    return rows


def cell_overrides(method: str, budget_s: float, seed: int | None) -> list[str]:
    """The overrides a learned ``method`` adds to its setting's: its model, the time budget and,
    for a seed, ``menu.seed`` and ``flow.seed``."""
    seeded = [] if seed is None else [f"menu.seed={seed}", f"flow.seed={seed}"]
    return LEARNED_OVERRIDES[method] + [f"menu.time_budget_s={budget_s}"] + seeded


def cell_folder(out: Path, setting: str, method: str, seed: int | None) -> Path:
    """A learned cell's run folder (single- or multi-bidder bench): ``out/<setting>/<method>``,
    or ``.../seed<k>`` for a seed."""
    folder = Path(out) / setting / method
    return folder if seed is None else folder / f"seed{seed}"


def cell_label(setting: str, method: str, seed: int | None) -> str:
    """``"<setting>: <method>"``, with ``" seed <k>"`` for a seed (progress lines)."""
    return f"{setting}: {method}" + ("" if seed is None else f" seed {seed}")


def combine_seeds(values: list[float], ses: list[float]) -> tuple[float, float, float | None]:
    """``(mean, mean within-seed s.e., s.e. across seeds)`` of one figure over seeds (the s.e.
    across seeds is the sample standard deviation over sqrt(seeds); ``None`` for one seed,
    which says nothing about the spread across seeds). Seeds that agree to the last digit (menus
    kept at a deterministic start) give their common value and exactly 0, not rounding noise."""
    k = len(values)
    if k > 1 and all(v == values[0] for v in values):
        return values[0], sum(ses) / k, 0.0
    mean = sum(values) / k
    across = math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1) / k) if k > 1 else None
    return mean, sum(ses) / k, across


def rows_over_seeds(
    per_seed: list[dict],
    seeds: list[int],
    *,
    figures: tuple[str, ...],
    means: tuple[str, ...],
    keep: tuple[str, ...],
    first: tuple[str, ...] = ("setting", "method", "machine"),
) -> dict:
    """One bench row from a cell's rows of the same kind, one per seed (single- and multi-bidder
    benches alike). Each of ``figures`` (a key ``f`` with its s.e. ``f_se``) becomes the mean over
    seeds, ``f_se`` the mean held-out s.e. within a seed (the seeds share their held-out
    profiles) and ``f_se_across_seeds`` the s.e. across seeds (:func:`combine_seeds`), or ``None``
    where a seed lacks it (no mean of the others); each of ``means`` is the plain mean (``None``
    where a seed lacks it; ``steps`` keys are rounded); ``first`` is taken from the first seed;
    ``per_seed`` keeps each seed's ``keep`` figures."""
    row: dict = {k: per_seed[0].get(k) for k in first}
    row["seeds"] = list(seeds)
    for f in figures:
        got: list = [(r.get(f), r.get(f + "_se")) for r in per_seed]
        if all(v is not None and se is not None for v, se in got):
            row[f], row[f + "_se"], row[f + "_se_across_seeds"] = combine_seeds(
                [v for v, _ in got], [se for _, se in got]
            )
        else:
            row[f] = row[f + "_se"] = None
    for key in means:
        vals: list = [r.get(key) for r in per_seed]
        mean = None if None in vals else sum(vals) / len(vals)
        row[key] = round(mean) if mean is not None and key.startswith("steps") else mean
    row["stopped_by_time_budget"] = any(r.get("stopped_by_time_budget") for r in per_seed)
    row["per_seed"] = [{"seed": k, **{x: r.get(x) for x in keep}} for k, r in zip(seeds, per_seed, strict=True)]
    return row


def over_seeds(per_seed: list[dict], seeds: list[int]) -> dict:
    """One single-bidder bench row from a learned cell's rows, one per seed
    (:func:`rows_over_seeds`): the held-out revenue and the paired gain over item pricing over
    seeds; seconds, steps and steps to 99% as means."""
    return rows_over_seeds(
        per_seed,
        seeds,
        figures=("test_revenue", "gain_over_item_pricing"),
        means=("train_seconds", "wall_seconds", "steps", "steps_to_99pct"),
        keep=("test_revenue", "test_revenue_se", "steps", "steps_to_99pct", "train_seconds", "gain_over_item_pricing"),
    )


def earlier_rows(path: Path, results: dict, log=print) -> list[dict]:
    """Rows of ``path`` (an earlier sitting's ``results.json``, single- or multi-bidder bench) for
    the (setting, method) pairs this sitting did not run, if it was written with the same
    preset, budget, quick flag and seeds; so that running the settings, or some methods of a
    setting (``--methods``), in several sittings fills one table. Otherwise
    none, and the earlier file is kept beside as ``results.replaced.json`` (one generation) before
    the new one is written, so no earlier figure is lost."""
    if not path.is_file():
        return []
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        same = all(old.get(k) == results[k] for k in ("preset", "budget_s", "quick", "seeds"))
        old_rows = [r for r in old["rows"] if isinstance(r, dict) and {"setting", "method", "test_revenue"} <= r.keys()]
        why = "written with another preset, budget, --quick or --seeds"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        same, why = False, "unreadable"
    if not same:
        kept = path.with_name(path.stem + ".replaced.json")
        path.replace(kept)
        log(f"{path}: {why}; replaced (the earlier file is kept as {kept.name})")
        return []
    now = {(r["setting"], r["method"]) for r in results["rows"]}
    return [r for r in old_rows if (r["setting"], r["method"]) not in now]


def joined_rows(path: Path, results: dict, log=print) -> list[dict]:
    """This sitting's ``results["rows"]`` joined with the rows :func:`earlier_rows` keeps from
    ``path``, in the earlier table's order: a row rerun takes its earlier row's place, new
    settings and methods come after (each setting's rows together)."""
    earlier_order: list[tuple[str, str]] = []
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))["rows"]
            earlier_order = [(r["setting"], r["method"]) for r in old if isinstance(r, dict)]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            pass  # earlier_rows keeps the unreadable file aside
    rows = earlier_rows(path, results, log) + results["rows"]
    if not path.is_file():  # none, or moved aside as replaced: this sitting's order alone
        earlier_order = []
    order = earlier_order + [(r["setting"], r["method"]) for r in rows]
    setting_rank: dict[str, int] = {}
    pair_rank: dict[tuple[str, str], int] = {}
    for s_, m_ in order:
        setting_rank.setdefault(s_, len(setting_rank))
        pair_rank.setdefault((s_, m_), len(pair_rank))
    return sorted(rows, key=lambda r: (setting_rank[r["setting"]], pair_rank[(r["setting"], r["method"])]))


# what the paper reports for its single-bidder comparison (arXiv:2502.15283): pure BundleFlow's
# revenue over the best baseline's, and Bundle-RochetNet's iterations to 99% of its final
# revenue over BundleFlow's, across the six CATS settings
PAPER_REVENUE_RATIO = (1.11, 2.23)
PAPER_SPEEDUP = (3.6, 9.5)
RATIO_BASELINES = ("rochetnet", "bundle_rochetnet", "grand_bundling", "item_pricing", "atom_menu")


def paper_figures(rows: list[dict]) -> list[dict]:
    """Per setting with a ``bundleflow`` row: its revenue over the best of :data:`RATIO_BASELINES`
    present (and which), over RochetNet and over item pricing, Bundle-RochetNet's steps to
    99% of its final revenue over BundleFlow's, and mixed bundling's (``bundleflow_mixed``)
    paired held-out gain over item pricing with its standard error (and, over seeds, its s.e.
    across seeds; ``None`` where a figure is missing)."""
    out = []
    for name in dict.fromkeys(r["setting"] for r in rows):
        by = {r["method"]: r for r in rows if r["setting"] == name}
        if "bundleflow" not in by:
            continue
        bf = by["bundleflow"]["test_revenue"]
        base = [m for m in RATIO_BASELINES if m in by]
        best = max(base, key=lambda m: by[m]["test_revenue"]) if base else None

        ratio = {m: bf / r["test_revenue"] for m, r in by.items() if r["test_revenue"] > 0}
        mixed = by.get("bundleflow_mixed", {})
        s_bf = by["bundleflow"].get("steps_to_99pct")
        s_brn = by.get("bundle_rochetnet", {}).get("steps_to_99pct")
        out.append(
            {
                "setting": name,
                "bundleflow": bf,
                "best_baseline": best,
                "ratio_to_best": ratio.get(best) if best else None,
                "ratio_to_rochetnet": ratio.get("rochetnet"),
                "gain_over_rochetnet": by["bundleflow"].get("gain_over_rochetnet"),
                "gain_over_rochetnet_se": by["bundleflow"].get("gain_over_rochetnet_se"),
                "gain_over_rochetnet_se_across_seeds": by["bundleflow"].get("gain_over_rochetnet_se_across_seeds"),
                "ratio_to_item_pricing": ratio.get("item_pricing"),
                "speedup_vs_bundle_rochetnet": s_brn / s_bf if s_bf and s_brn is not None else None,
                "mixed_gain_over_item_pricing": mixed.get("gain_over_item_pricing"),
                "mixed_gain_over_item_pricing_se": mixed.get("gain_over_item_pricing_se"),
                "mixed_gain_over_item_pricing_se_across_seeds": mixed.get("gain_over_item_pricing_se_across_seeds"),
            }
        )
    return out


def _paper_table(figures: list[dict]) -> list[str]:
    f = lambda x: "" if x is None else f"{x:.2f}"  # noqa: E731

    def gain(r: dict, key: str = "mixed_gain_over_item_pricing") -> str:
        g, se = r.get(key), r.get(key + "_se")
        if g is None or se is None:
            return ""
        across = r.get(key + "_se_across_seeds")
        seeds = "" if across is None else f"; +- {across:.3g} across seeds"
        return (f"{g:+.4g} +- {se:.3g} ({g / se:+.1f} s.e.)" if se > 0 else f"{g:+.4g}") + seeds

    lines = [
        "",
        f"| setting | BundleFlow / best baseline (which) | paper: {PAPER_REVENUE_RATIO[0]}-{PAPER_REVENUE_RATIO[1]}x "
        f"| / RochetNet | BundleFlow - RochetNet (paired) | / item pricing | Bundle-RochetNet steps to 99% / BundleFlow's "
        f"| paper: {PAPER_SPEEDUP[0]}-{PAPER_SPEEDUP[1]}x | mixed bundling - item pricing (paired) |",
        "|---|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in figures:
        lines.append(
            f"| {r['setting']} | {f(r['ratio_to_best'])} ({r['best_baseline'] or '-'}) | "
            f"| {f(r['ratio_to_rochetnet'])} | {gain(r, 'gain_over_rochetnet')} | {f(r['ratio_to_item_pricing'])} "
            f"| {f(r['speedup_vs_bundle_rochetnet'])} | "
            f"| {gain(r)} |"
        )
    n = len(figures)
    count = lambda key, ok: sum(1 for r in figures if r[key] is not None and ok(r))  # noqa: E731
    lines += [
        "",
        f"Targets: BundleFlow >= RochetNet on {count('ratio_to_rochetnet', lambda r: r['ratio_to_rochetnet'] >= 1)}"
        f" of {n} (all wanted); >= item pricing on "
        f"{count('ratio_to_item_pricing', lambda r: r['ratio_to_item_pricing'] >= 1)} of {n} (4 of 6 wanted); "
        "mixed bundling's paired gain over item pricing > 3 s.e. on "
        f"{count('mixed_gain_over_item_pricing_se', lambda r: r['mixed_gain_over_item_pricing'] > 3 * r['mixed_gain_over_item_pricing_se'])}"
        f" of {n} (all wanted).",
    ]
    return lines


def markdown(results: dict) -> str:
    seeded = bool(results.get("seeds"))
    head = "| setting | method | held-out revenue | ± s.e. |" + (" ± s.e. across seeds | seeds |" if seeded else "")
    lines = [
        head + " train s | steps | steps to 99% |",
        "|---|---|---:|---:|" + ("---:|---|" if seeded else "") + "---:|---:|---:|",
    ]
    for r in results["rows"]:
        se = "" if r["test_revenue_se"] is None else f"{r['test_revenue_se']:.4g}"
        steps = "" if r["steps"] is None else str(r["steps"])
        s99 = "" if r["steps_to_99pct"] is None else str(r["steps_to_99pct"])
        extra = ""
        if seeded:
            across = r.get("test_revenue_se_across_seeds")
            extra = f" {'-' if across is None else f'{across:.4g}'} | {','.join(map(str, r.get('seeds', [])))} |"
        lines.append(
            f"| {r['setting']} | {r['method']} | {r['test_revenue']:.4f} | {se} |{extra} {r['train_seconds']:.1f} | {steps} | {s99} |"
        )
    if seeded:
        lines += [
            "",
            f"Learned rows: mean over seeds {','.join(map(str, results['seeds']))} (same data, same held-out bidders); "
            "± s.e. is the mean held-out s.e. within a seed, the next column the s.e. across seeds.",
        ]
    if results.get("preset") == "paper":
        lines += _paper_table(paper_figures(results["rows"]))
    if results["checks"]:
        lines += ["", "| known-answer check | revenue | at least | passed |", "|---|---:|---:|---|"]
        lines += [
            f"| {c['method']} on {c['setting']} | {c['revenue']:.4f} | {c['at_least']} | {'yes' if c['passed'] else 'NO'} |"
            for c in results["checks"]
        ]
    return "\n".join(lines) + "\n"


def mean_curve(runs: list[list[tuple[int, float, float]]], x: int) -> tuple[list, list, list]:
    """``(xs, mean revenue, s.e. across runs)`` of the ``(step, seconds, revenue)`` curves of one
    cell's seeds, point by point up to the shortest (the seeds log at the same steps; ``x``:
    0 for steps, 1 for seconds, averaged over the seeds). One run: its curve, s.e. 0."""
    runs = [r for r in runs if r]
    if not runs:
        return [], [], []
    n = min(len(r) for r in runs)
    xs, ys, band = [], [], []
    for i in range(n):
        pts = [r[i] for r in runs]
        y, _, across = combine_seeds([p[2] for p in pts], [0.0] * len(pts))
        xs.append(sum(p[x] for p in pts) / len(pts))
        ys.append(y)
        band.append(across or 0.0)
    return xs, ys, band


def plot_revenue_vs_time(curves: dict, rows: list[dict], path: Path, x: str = "seconds") -> bool:
    """One panel per setting: validation hard revenue vs training ``x`` (``"seconds"`` or
    ``"steps"``; ``curves[setting][method]`` holds one list of ``(step, seconds, revenue)``
    points per seed, drawn as their mean with a band of +- 1 s.e. across seeds); baselines
    dashed. Whether it was written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in curves if curves[n]]
    if not names:
        return False
    cols = min(3, len(names))
    nrows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.6 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for method, runs in curves[name].items():
            xs, ys, band = mean_curve(runs, 0 if x == "steps" else 1)
            if xs:
                label = method if len(runs) == 1 else f"{method} (mean of {len(runs)} seeds, +- s.e.)"
                (line,) = ax.plot(xs, ys, marker=".", label=label)
                if len(runs) > 1:
                    lo = [y - b for y, b in zip(ys, band, strict=True)]
                    hi = [y + b for y, b in zip(ys, band, strict=True)]
                    ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
        for r in rows:
            if r["setting"] == name and r["method"] not in LEARNED:
                ax.axhline(r["test_revenue"], ls="--", lw=0.8, color="grey")
                ax.annotate(r["method"], (0, r["test_revenue"]), fontsize=7, color="grey", va="bottom")
        ax.set_title(name)
        ax.set_xlabel("training " + ("steps" if x == "steps" else "seconds"))
        ax.set_ylabel("revenue (validation, exact)")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return True

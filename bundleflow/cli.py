"""Command-line interface: ``bundleflow --help``."""

from __future__ import annotations

import functools
import platform
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bundleflow.errors import InputError, error_message

# rich_markup_mode=None: help text is printed as written ("[0,1]" in a docstring is not markup)
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Revenue-optimal auction menus (BundleFlow).",
)
# markup off: paths, config values and error messages are printed as written (a "[red]" in a
# path is shown, never interpreted)
console = Console(markup=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)
_DEBUG = {"on": False}


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="on failure, show the Python traceback")):
    """Revenue-optimal auction menus (BundleFlow)."""
    _DEBUG["on"] = debug


def _fail(exc: BaseException) -> None:
    err_console.print(Text("error: ", style="bold red") + Text(error_message(exc)), soft_wrap=True)
    raise typer.Exit(code=2)


def _guarded(fn):
    """Every failure of a command becomes one line on stderr and exit code 2 (``--debug``: the traceback)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted; a run folder continues where it stopped when the command is run again")
            raise typer.Exit(code=130) from None
        except Exception as exc:
            if _DEBUG["on"]:
                raise
            _fail(exc)

    return run


def command(*args, parent: typer.Typer | None = None, **kwargs):
    """``app.command`` whose failures are one line (:func:`_guarded`)."""
    return lambda fn: (parent or app).command(*args, **kwargs)(_guarded(fn))


_COLUMNS = ("method", "in-sample revenue", "held-out revenue", "fit seconds")
_CAPTION = (
    "in-sample: revenue on the training bidders every method was fitted on (learned menus are also "
    "selected on a validation split); held-out: bidders no method saw. fit seconds: that method's own "
    "fitting time (Stage 2 training for learned menus)."
)


def print_table(t: Table) -> None:
    """Print ``t`` at its natural width (wider than the terminal if need be): names are never cut to "bundleflo…"."""
    natural = console.measure(t, options=console.options.update_width(10_000)).maximum
    width = console.width
    console.width = max(width, natural)  # print(width=) is capped at the console's width
    try:
        console.print(t)
    finally:
        console.width = width


def _num(x, fmt: str) -> str:
    return "-" if x is None or x != x else format(x, fmt)


def _table(title: str, rows: list[dict]) -> Table:
    t = Table(title=Text(title), caption=Text(_CAPTION))
    for i, c in enumerate(_COLUMNS):
        t.add_column(c, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for r in rows:
        t.add_row(
            Text(r["method"]),
            _num(r["train_revenue"], ".4f"),
            _num(r["test_revenue"], ".4f"),
            _num(r["seconds"], ".2f"),
        )
    return t


def _text_table(title: str, columns: tuple[str, ...], rows: list[list[str]], left: int = 1) -> Table:
    """A table of already formatted ``rows``; the first ``left`` columns (user text: no markup)
    left-aligned and unwrapped, the others right-aligned."""
    t = Table(title=Text(title))
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i < left else "right", no_wrap=i < left)
    for r in rows:
        t.add_row(*(Text(x) if i < left else x for i, x in enumerate(r)))
    return t


def _markdown(title: str, rows: list[dict]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(_COLUMNS) + " |", "|---|---:|---:|---:|"]
    lines += [
        f"| {r['method']} | {_num(r['train_revenue'], '.4f')} | {_num(r['test_revenue'], '.4f')} | {_num(r['seconds'], '.2f')} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n\n" + _CAPTION + "\n"


def describe_learning(learned: dict) -> str:
    """One line: which start was kept and what the final price polish changed (exact revenues)."""
    cov, pol = learned.get("coverage", {}), learned["polish"]
    start = f"start: {cov['start']} (training revenue {cov['start_train_revenue']:.4f}); " if "start" in cov else ""
    text = (
        f"{start}price polish ({pol['rounds']} rounds, {pol['seconds']:.1f} s): training "
        f"{pol['train_revenue_before']:.4f} -> {pol['train_revenue_after']:.4f}, held-out "
        f"{pol['test_revenue_before']:.4f} -> {pol['test_revenue_after']:.4f}"
    )
    if not pol["kept"]:
        text += (
            f"; not kept: the polished prices earned {pol['polished_train_revenue_after']:.4f} on training but "
            f"{pol.get('polished_val_revenue_after', float('nan')):.4f} on validation "
            f"(vs {pol.get('val_revenue_before', float('nan')):.4f})"
        )
    from bundleflow.training.learning import describe

    return text + "\n" + describe(learned.get("learning"))


def _limit(limit: int | None) -> int | None:
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be >= 1 (omit it to use every row), got {limit}")
    return limit


@command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="run folder to write"),
    seed: int = typer.Option(0, help="random seed"),
):
    """Small built-in job: baselines, LP optimum and bounds, BundleFlow end to end, tariffs vs item pricing on CATS."""
    from bundleflow.experiments.baseline_table import baseline_rows
    from bundleflow.experiments.config import load_config
    from bundleflow.experiments.runner import run_training
    from bundleflow.oracles.lp import lp_optimal_mechanism
    from bundleflow.utils.files import atomic_write_json, atomic_write_text, writable_dir
    from bundleflow.valuations.base import Valuation
    from bundleflow.valuations.generators import additive_uniform, uniform_atoms, uniform_grid_type_space

    writable_dir(out)
    sections = []
    # 1) uniform atoms, m=3: LP optimum on a 200-type training sample
    console.print("demo 1/4: uniform atoms m=3: baselines and the exact LP optimum on the 200 training types")
    train: Valuation = uniform_atoms(200, 3, 5, 0.5, seed=seed)
    test: Valuation = uniform_atoms(5000, 3, 5, 0.5, seed=seed + 1)
    sections.append(
        ("uniform atoms m=3, K=5, q=0.5, U[0,1] (200 train / 5000 held-out)", baseline_rows(train, test, 16, lp=True))
    )
    # 2) two additive U[0,1] items: known optimum 0.5491 (Manelli-Vincent)
    console.print("demo 2/4: 2 additive items U[0,1]: baselines, LP on grids, known optimum")
    train = additive_uniform(20000, 2, seed=seed)
    test = additive_uniform(20000, 2, seed=seed + 1)
    rows = baseline_rows(train, test)
    lp6 = lp_optimal_mechanism(*uniform_grid_type_space(2, 6)).revenue
    lp12 = lp_optimal_mechanism(*uniform_grid_type_space(2, 12)).revenue
    rows.insert(-1, {"method": "lp_grid12", "train_revenue": lp12, "test_revenue": None, "seconds": 0.0})
    rows.insert(
        -1, {"method": "lp_extrapolated", "train_revenue": 2 * lp12 - lp6, "test_revenue": None, "seconds": 0.0}
    )
    rows.insert(-1, {"method": "known_optimum", "train_revenue": 0.5491, "test_revenue": 0.5491, "seconds": 0.0})
    sections.append(("2 additive items U[0,1] (20000 train / 20000 held-out)", rows))
    # 3) BundleFlow end to end on uniform atoms m=10 (Stage 1 + Stage 2, small budget)
    console.print("demo 3/4: BundleFlow end to end (Stage 1 flow, Stage 2 menu) on uniform atoms m=10")
    cfg = load_config(
        None,
        [
            f"data.seed={seed}",
            "data.n_items=10",
            "data.n_atoms=5",
            "data.q=0.3",
            "data.n_train=3000",
            "data.n_val=1000",
            "data.n_test=5000",
            "flow.steps=800",
            "menu.n_elements=32",
            "menu.steps=300",
            "menu.log_every=50",
            "device=cpu",
        ],
    )
    s = run_training(cfg, out / "bundleflow", resume=False, log=console.print)
    bf = s["learned"]
    rows = [
        {
            "method": "bundleflow",
            "train_revenue": bf["train_revenue"],
            "test_revenue": bf["test_revenue"],
            "seconds": s["stage2_seconds"],
        }
    ]
    rows += s["baselines"]
    sections.append(("BundleFlow, uniform atoms m=10, K=5, q=0.3 (3000 train / 1000 validation / 5000 held-out)", rows))
    # 4) CATS arbitrary, 50 goods: a learned menu of two-part tariffs against exact item pricing
    # (bundleflow design with two families; 2,000 held-out bidders so that a 5% gain shows)
    from bundleflow.experiments.bench import default_cats_dir
    from bundleflow.experiments.design import run_design

    reference = default_cats_dir() / "arbitrary_50_single.npz"
    console.print("demo 4/4: CATS arbitrary, 50 goods: two-part tariffs against exact item pricing (bundleflow design)")
    if reference.is_file():
        from bundleflow.cats.io import load_valuations

        cats, cats_name = load_valuations(reference), reference.name
    else:  # no shared reference data: the same distribution drawn by the Python CATS generator
        from bundleflow.cats.generator import generate

        cats, cats_name = generate("arbitrary", 50, 5000, seed=seed)[0], "arbitrary_50 (drawn, 5000)"
    design = run_design(
        cats,
        out / f"design_seed{seed}",
        cats_name,
        ["item_pricing", "tariffs"],
        60.0,
        seed,
        (0.5, 0.1, 0.4),
        log=lambda *a: None,
    )
    by = {r["family"]: r for r in design["rows"]}
    rows = [
        {
            "method": n,
            "train_revenue": by[n]["val_revenue"],
            "test_revenue": by[n]["test_revenue"],
            "seconds": by[n]["seconds"],
        }
        for n in ("tariffs", "item_pricing")
    ]
    n_split = f"{design['n_train']} train / {design['n_val']} validation / {design['n_test']} held-out"
    sections.append((f"CATS {cats_name}: 4 two-part tariffs vs item pricing ({n_split}; in-sample = validation)", rows))
    for title, rows in sections:
        print_table(_table(title, rows))
    console.print(f"BundleFlow: {describe_learning(bf)}")
    ip = by["item_pricing"]
    if design["winner"] == "tariffs":
        console.print(
            f"tariffs: held-out gain over exact item pricing {ip['winner_gain']:+.2f} +- {ip['winner_gain_se']:.2f} "
            f"(paired on the same {design['n_test']} bidders, z = {ip['winner_gain'] / ip['winner_gain_se']:.1f})"
        )
    else:
        console.print("tariffs: no menu beat exact item pricing on validation; item pricing is kept")
    summary = {"seed": seed, "sections": [{"setting": t, "rows": r} for t, r in sections]}
    atomic_write_json(out / "summary.json", summary)
    atomic_write_json(
        out / "config.json",
        {"command": "demo", "seed": seed, "python": sys.version.split()[0], "platform": platform.platform()},
    )
    report = "# bundleflow demo\n\nRevenue is the exact (hard) evaluation of each mechanism.\n\n" + "\n".join(
        _markdown(t, r) for t, r in sections
    )
    atomic_write_text(out / "report.md", report)
    console.print(
        f"wrote {out}/summary.json and {out}/report.md; BundleFlow run report: {out}/bundleflow/report/index.html"
    )


@command()
def baselines(
    data: Path = typer.Argument(..., help="valuations: CATS .npz reference file or CATS bid text file"),
    train_frac: float = typer.Option(0.8, help="share of rows used to fit; the rest is held out"),
    limit: int = typer.Option(None, help="use only the first LIMIT rows (default: all)"),
    atom_menu_size: int = typer.Option(64, help="elements of the atom menu"),
    out: Path = typer.Option(None, help="write the rows as JSON here"),
):
    """Grand bundling, item pricing, atom menu and the welfare bound on a valuation file."""
    from bundleflow.cats.io import load_valuations
    from bundleflow.experiments.baseline_table import baseline_rows
    from bundleflow.utils.files import atomic_write_json, writable_file

    if not 0 < train_frac < 1:
        raise InputError(f"--train-frac must lie in (0, 1), got {train_frac}")
    if atom_menu_size < 1:
        raise InputError(f"--atom-menu-size must be >= 1, got {atom_menu_size}")
    if out is not None:
        writable_file(out)
    v = load_valuations(data, limit=_limit(limit))
    n_train = int(round(train_frac * len(v)))
    if not 0 < n_train < len(v):
        raise InputError(f"{data}: {len(v)} rows are too few to split with --train-frac {train_frac}")
    train, test = v.split(n_train)
    rows = baseline_rows(train, test, atom_menu_size)
    print_table(_table(f"{data.name}: {len(train)} train / {len(test)} held-out", rows))
    if out is not None:
        atomic_write_json(out, {"data": str(data), "rows": rows})
        console.print(f"wrote {out}")


@command("train-flow")
def train_flow_cmd(
    n_items: int = typer.Option(..., "--items", "-m", help="number of items m"),
    out: Path = typer.Option(..., help="flow checkpoint to write (.pt)"),
    steps: int = typer.Option(2000),
    batch: int = typer.Option(512),
    lr: float = typer.Option(3e-3),
    hidden: int = typer.Option(128),
    n_quad: int = typer.Option(16),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto"),
):
    """Stage 1: train the flow for m items by rectified flow and save it with its diagnostics."""
    from bundleflow.flow.stage1 import describe_diagnostics, flow_diagnostics, save_flow, train_flow
    from bundleflow.utils.device import resolve_device
    from bundleflow.utils.files import writable_file
    from bundleflow.utils.progress import progress_bar

    if n_items < 1:
        raise InputError(f"--items must be >= 1, got {n_items}")
    writable_file(out)
    dev = resolve_device(device)
    with progress_bar("stage 1 flow", steps) as advance:
        flow = train_flow(n_items, steps, batch, lr, hidden, n_quad, seed, dev, callback=lambda i, loss: advance(1))
    diag = flow_diagnostics(flow)
    save_flow(out, flow, diag)
    console.print(f"flow m={n_items}: {describe_diagnostics(diag)}")
    console.print(f"wrote {out}")


@command()
def train(
    config: Path = typer.Option(None, "--config", "-c", help="YAML run config"),
    out: Path = typer.Option(Path("runs/train"), help="run folder"),
    override: list[str] = typer.Argument(None, help="overrides key.sub=value, e.g. menu.steps=500"),
    resume: bool = typer.Option(True, help="continue from the run folder's checkpoint if present"),
):
    """Stage 1 (unless a flow checkpoint is given) + Stage 2; prints held-out exact revenue vs baselines."""
    from bundleflow.experiments.config import load_config
    from bundleflow.experiments.runner import run_training

    cfg = load_config(config, override or [])
    if cfg.menu.model == "gemnet":
        _train_multi(cfg, out, resume)
        return
    summary = run_training(cfg, out, resume=resume, log=console.print)
    bf = summary["learned"]
    name = bf["model"] + ("+item prices" if bf["outside"] == "item_prices" else "")
    rows = [
        {
            "method": name,
            "train_revenue": bf["train_revenue"],
            "test_revenue": bf["test_revenue"],
            "seconds": summary["stage2_seconds"],
        }
    ]
    rows += summary["baselines"]
    print_table(_table(f"exact revenue ({summary['n_train']} train / {summary['n_test']} held-out bidders)", rows))
    console.print(describe_learning(bf))
    console.print(f"wrote {out}/summary.json")


@command()
def design(
    data: Path = typer.Argument(..., help="valuations: .npz file (bundleflow data generate) or CATS bid text file"),
    out: Path = typer.Option(Path("runs/design"), help="run folder (a rerun with the same options resumes)"),
    families: str = typer.Option(None, help="comma-separated families (default: every applicable one)"),
    budget: float = typer.Option(600.0, help="training seconds for all learned families together"),
    seed: int = typer.Option(0, help="seed of the split and of every learned family"),
    split: str = typer.Option("0.75,0.10,0.15", help="train,validation,held-out shares"),
    limit: int = typer.Option(None, help="use only the first LIMIT rows (default: all)"),
    device: str = typer.Option("cpu", help="cpu, cuda or auto"),
):
    """Fit every mechanism family on your bidders; recommend the best on validation, with held-out gains."""
    from bundleflow.cats.io import load_valuations
    from bundleflow.experiments.design import run_design

    try:
        shares = tuple(float(x) for x in split.split(","))
    except ValueError:
        raise InputError(f"--split must be three numbers like 0.75,0.10,0.15, got {split[:60]!r}") from None
    names = [n.strip() for n in families.split(",") if n.strip()] if families else None
    v = load_valuations(data, limit=_limit(limit))
    summary = run_design(
        v,
        out,
        data.name,
        names,
        budget,
        seed,
        shares,
        device,
        progress=True,
        log=console.print,
    )
    t = _text_table(
        f"{data.name}: {summary['n_train']} train / {summary['n_val']} validation / {summary['n_test']} held-out",
        ("family", "validation", "held-out +- s.e.", "winner's gain (paired)", "seconds"),
        [
            [
                r["family"],
                f"{r['val_revenue']:.4f}",
                f"{r['test_revenue']:.4f} +- {r['test_revenue_se']:.3g}",
                "winner"
                if r["family"] == summary["winner"]
                else f"{r['winner_gain']:+.4g} +- {r['winner_gain_se']:.2g}",
                f"{r['seconds']:.1f}",
            ]
            for r in summary["rows"]
        ],
    )
    print_table(t)
    console.print(f"recommended (best validation revenue): {summary['winner']} -> {summary['winner_mechanism']}")
    console.print(f"wrote {out}/summary.json, results.md, design.png ({summary['wall_seconds']:.0f} s)")


@command()
def sweep(
    sweep_file: Path = typer.Argument(None, help="a sweep YAML (config, base, axes, seeds); or give them below"),
    out: Path = typer.Option(Path("runs/sweep"), help="sweep folder: one run folder per cell and seed"),
    config: Path = typer.Option(None, "--config", "-c", help="base run config (YAML)"),
    axis: list[str] = typer.Option(None, "--axis", help="an axis, key.sub=v1,v2 (repeatable)"),
    seeds: str = typer.Option(None, help="seeds, 0-4 or 0,3,7 (default 0, or the file's)"),
    executor: str = typer.Option("local", help="local (in this process) or ray"),
    address: str = typer.Option(None, help="a Ray cluster's address (ray executor; default: a local Ray)"),
    cpus_per_task: int = typer.Option(1, help="CPUs (and torch threads) per run"),
    override: list[str] = typer.Argument(None, help="base overrides key.sub=value"),
):
    """Run a grid of configs over seeds (each an ordinary, resumable run folder); mean +- s.e. over seeds."""
    from bundleflow.experiments.sweep import SweepSpec, load_sweep_file, parse_axis, parse_seeds, run_sweep

    over = list(override or [])
    spec = SweepSpec()
    if sweep_file is not None and "=" in str(sweep_file):  # no file: the first override
        over.insert(0, str(sweep_file))
    elif sweep_file is not None:
        spec = load_sweep_file(sweep_file)
    if config is not None:
        spec.config = config
    spec.base += over
    for a in axis or []:
        key, values = parse_axis(a)
        spec.axes[key] = values
    if seeds is not None:
        spec.seeds = parse_seeds(seeds)
    res = run_sweep(spec, out, executor, address, cpus_per_task, log=console.print)
    axes = list(spec.axes)
    cells = []
    for c in res["cells"]:
        mean = c["test_revenue_mean"]
        cells.append(
            [c["cell"], *(c[f"axis:{a}"] for a in axes), str(c["seeds"]), str(c["failed"]),
             _num(mean, ".4f"), _num(c["test_revenue_se_across_seeds"], ".4f"),
             _num(c["test_revenue_se_within_seed"], ".4f")]
        )  # fmt: skip
    columns = ("cell", *axes, "seeds", "failed", "revenue (mean)", "± s.e. seeds", "s.e. within")
    print_table(_text_table("exact held-out revenue over seeds", columns, cells, 1 + len(axes)))
    console.print(f"wrote {out}/results.json, results.md")
    failed = sum(c["failed"] for c in res["cells"])
    if failed:
        raise InputError(f"{failed} run(s) of the sweep failed (see {out}/results.md)")


def _train_multi(cfg, out: Path, resume: bool) -> None:
    """``bundleflow train menu.model=gemnet ...``: train, transform, evaluate; print the table."""
    from bundleflow.experiments.multi_runner import run_multi_training

    summary = run_multi_training(cfg, out, resume=resume, log=console.print)
    g = summary["learned"]
    rows = [("gemnet", g["test_revenue"], g["test_revenue_se"], g["test_over_allocation_rate"])]
    if g.get("transform"):
        b = g["before_transform"]
        rows.append(("gemnet before the transform", b["revenue"], b["revenue_se"], b["over_allocation_rate"]))
    rows += [
        (r["method"], r["test_revenue"], r["test_revenue_se"], r["over_allocation_rate"]) for r in summary["baselines"]
    ]
    print_table(
        _text_table(
            f"exact revenue, {summary['n_bidders']} bidders ({summary['n_test']} held-out profiles)",
            ("method", "held-out revenue", "± s.e.", "over-allocated profiles"),
            [[name, _num(rev, ".4f"), _num(se, ".4f"), _num(over, ".2%")] for name, rev, se, over in rows],
        )
    )
    tr = g.get("transform")
    if tr:
        console.print(
            Text(
                f"transform: {tr['violating_before']} of {tr['grid_profiles']} grid profiles over-allocated before, "
                f"0 after; MILP {tr['milp_seconds']:.1f} s over {tr['milp_profiles']} profiles; grid revenue "
                f"{tr['grid_revenue_before']:.4f} -> {tr['grid_revenue_after']:.4f}"
            )
        )
    w = g.get("withholding")
    if w:
        console.print(
            Text(
                f"withholding {w['share']:g} of every allocation and price (chosen by the {w['chosen_by']}): "
                f"held-out revenue {w['test_revenue_before']:.4f} -> {g['test_revenue']:.4f}, over-allocated "
                f"{w['test_over_allocation_rate_before']:.2%} -> {g['test_over_allocation_rate']:.2%}"
            )
        )
    cert = g.get("certificate")
    if cert:
        console.print(
            Text(
                f"certificate: no over-allocation on {cert['certified_share']:.2%} of the value space "
                f"({cert['boxes_checked']} boxes, {cert['seconds']:.1f} s)"
            )
        )
    console.print(f"wrote {out}/summary.json")


@command()
def evaluate(
    menu_file: Path = typer.Argument(
        ..., help="menu.json written by `bundleflow train`, or a GemNet run's mechanism.pt"
    ),
    data: Path = typer.Argument(
        ..., help="valuations (.npz or CATS bid file); for mechanism.pt also .npy item values [B, n, m]"
    ),
    limit: int = typer.Option(None, help="first LIMIT rows (mechanism.pt: profiles) only (default: all)"),
):
    """Exact revenue of a saved menu on a valuation file."""
    from bundleflow.cats.io import load_valuations
    from bundleflow.mechanisms.menu import evaluate_menu, read_menu
    from bundleflow.utils.files import json_dumps

    if menu_file.suffix == ".pt":  # a multi-bidder mechanism
        from bundleflow.experiments.multi_runner import load_mechanism, profiles_from_file
        from bundleflow.mechanisms.multi import evaluate_multi
        from bundleflow.training.compatibility import inner_gemnet
        from bundleflow.valuations.xor import XORValuation

        mech = load_mechanism(menu_file)
        net = inner_gemnet(mech)
        bidders = profiles_from_file(data, mech.n_bidders, net.unit_demand, _limit(limit))
        if net.bundles != isinstance(bidders[0], XORValuation):
            kind = "XOR (CATS)" if net.bundles else "item"
            raise InputError(f"{menu_file}: a mechanism for {kind} bidders; {data} holds the other kind")
        console.print_json(json_dumps(evaluate_multi(mech, bidders).summary()))
        return
    menu = read_menu(menu_file)
    v = load_valuations(data, limit=_limit(limit))
    res = evaluate_menu(menu, v)
    console.print_json(json_dumps(res.summary()))


@command()
def certify(
    mechanism_file: Path = typer.Argument(..., help="a GemNet run's mechanism.pt (item bidders)"),
    low: float = typer.Option(0.0, help="lowest value of every bid"),
    high: float = typer.Option(1.0, help="highest value of every bid"),
    boxes: int = typer.Option(200_000, help="boxes bounded at most"),
    levels: int = typer.Option(1, help="first boxes per coordinate (a transformed mechanism uses its grid's)"),
):
    """Certify that a saved GemNet never over-allocates on [low, high]^(n m): the share of the
    value space certified box by box (bundleflow.training.certificate)."""
    from bundleflow.experiments.multi_runner import load_mechanism
    from bundleflow.training.certificate import certify as certify_mechanism
    from bundleflow.utils.files import json_dumps

    if mechanism_file.suffix != ".pt":
        raise InputError(f"{mechanism_file}: certify reads a GemNet run's mechanism.pt")
    cert = certify_mechanism(load_mechanism(mechanism_file), low, high, levels=levels, max_cells=boxes)
    console.print_json(json_dumps(cert.summary()))


@command()
def bench(
    out: Path = typer.Option(
        Path("runs/bench"), help="folder for results.json, results.md, revenue_vs_time.png and run folders"
    ),
    settings: str = typer.Option("", help="comma-separated settings (default: all; see --list)"),
    methods: str = typer.Option("", help="comma-separated methods (default: all; multi: GemNet variants)"),
    budget: float = typer.Option(None, help="wall-clock budget per learned run, seconds (default 600; paper 1200)"),
    quick: bool = typer.Option(False, help="tiny sizes: a smoke test of the whole pipeline"),
    cats_dir: Path = typer.Option(None, help="folder of the CATS reference files (default ../shared/cats)"),
    preset: str = typer.Option(
        "default", help="default, paper (CATS at 50-150 items, J=5000, D=8) or multi (GemNet, several bidders)"
    ),
    data_dir: Path = typer.Option(None, help="paper: folder for the generated valuation files (default OUT/data)"),
    resume: bool = typer.Option(True, help="read back finished cells and continue interrupted ones"),
    list_: bool = typer.Option(False, "--list", help="list settings and methods, then exit"),
    executor: str = typer.Option("local", help="local, or ray: the learned cells run as Ray tasks first"),
    address: str = typer.Option(None, help="a Ray cluster's address (ray executor; default: a local Ray)"),
    cpus_per_task: int = typer.Option(1, help="ray executor: CPUs (and torch threads) per learned cell"),
    seeds: str = typer.Option(
        None, help="train each learned cell once per seed (0-2 or 0,3,7): mean, s.e. across seeds, within a seed"
    ),
):
    """Settings x methods benchmark: exact held-out revenue +- s.e., time, steps to 99%, plots."""
    from bundleflow.experiments.bench import METHODS, PAPER_BUDGET_S, PRESETS, paper_settings, run_bench
    from bundleflow.experiments.bench import settings as table
    from bundleflow.experiments.multi_bench import ALL_VARIANTS, SETTING_NAMES, run_multi_bench
    from bundleflow.experiments.sweep import parse_seeds
    from bundleflow.utils.files import writable_dir

    if preset not in PRESETS + ("multi",):
        raise InputError(f"unknown preset {preset!r}; known: {', '.join(PRESETS + ('multi',))}")
    if preset == "multi" and (data_dir is not None or cats_dir is not None):
        raise InputError(
            "--preset multi runs GemNet and its baselines on profiles it draws: no --data-dir or --cats-dir"
        )
    seed_list = parse_seeds(seeds) if seeds is not None else None
    if list_ and preset == "multi":
        console.print("settings: " + ", ".join(SETTING_NAMES))
        console.print(
            f"methods: {', '.join(ALL_VARIANTS)} (fees: additive bidders; serial, conflict and affine: XOR bidders), "
            "before the transform, item auctions (tuned reserve; additive: also with a tuned entry fee), vcg, "
            "vcg with a tuned item reserve (XOR bidders), sequential posted price"
        )
        return
    if list_:
        names = paper_settings(Path(".")) if preset == "paper" else table(cats_dir)
        console.print("settings: " + ", ".join(names))
        console.print("methods: " + ", ".join(METHODS))
        return
    if budget is None:
        budget = PAPER_BUDGET_S if preset == "paper" else 600.0
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] or None  # noqa: E731
    writable_dir(out)
    if preset == "multi":
        res = run_multi_bench(
            out,
            split(settings),
            budget,
            quick,
            log=console.print,
            resume=resume,
            progress=True,
            executor=executor,
            address=address,
            cpus_per_task=cpus_per_task,
            seeds=seed_list,
            methods=split(methods),
        )
        cells = []
        for r in res["rows"]:
            rev, se, secs, steps, _ = _bench_cells(r)
            cells.append([r["setting"], r["method"], rev, se, _num(r["over_allocation_rate"], ".2%"), secs, steps])
        columns: tuple[str, ...] = ("setting", "method", "revenue", "s.e.", "over-allocated", "train s", "steps")
        title = f"exact held-out revenue, several bidders (budget {budget:g} s per run)"
        if seed_list is not None:
            columns = _with_seed_column(columns, cells, res["rows"])
            title += f"; GemNet rows: mean over seeds {seeds}"
        print_table(_text_table(title, columns, cells, 2))
        console.print(f"wrote {out}/results.json, results.md")
        return
    res = run_bench(
        out,
        split(settings),
        split(methods),
        budget,
        quick,
        cats_dir,
        log=console.print,
        preset=preset,
        data_dir=data_dir,
        resume=resume,
        progress=True,
        executor=executor,
        address=address,
        cpus_per_task=cpus_per_task,
        seeds=seed_list,
    )
    columns = ("setting", "method", "revenue", "s.e.", "train s", "steps", "steps to 99%")
    cells = [[r["setting"], r["method"], *_bench_cells(r)] for r in res["rows"]]
    title = f"exact held-out revenue (budget {budget:g} s per learned run)"
    if seed_list is not None:
        columns = _with_seed_column(columns, cells, res["rows"])
        title += f"; learned rows: mean over seeds {seeds}, s.e. within a seed and across seeds"
    print_table(_text_table(title, columns, cells, 2))
    for c in res["checks"]:
        console.print(
            f"check {c['method']} on {c['setting']}: {c['revenue']:.4f} >= {c['at_least']}: {'passed' if c['passed'] else 'FAILED'}"
        )
    console.print(
        f"wrote {out}/results.json, results.md"
        + (", revenue_vs_time.png, revenue_vs_steps.png" if res.get("plot") else "")
    )


def _with_seed_column(columns: tuple[str, ...], cells: list[list[str]], rows: list[dict]) -> tuple[str, ...]:
    """Insert the "s.e. across seeds" column after the s.e. (the fifth) into ``cells`` (one list
    per bench row of ``rows``, in place); return the columns with it."""
    for c, r in zip(cells, rows, strict=True):
        c.insert(4, _num(r.get("test_revenue_se_across_seeds"), ".4g"))
    return (*columns[:4], "s.e. across seeds", *columns[4:])


def _bench_cells(r: dict) -> list[str]:
    """A bench row's revenue, s.e., training seconds, steps and steps to 99% as table cells."""
    return [
        _num(r["test_revenue"], ".4f"),
        _num(r["test_revenue_se"], ".4g"),
        _num(r["train_seconds"], ".1f"),
        "" if r.get("steps") is None else str(r["steps"]),
        "" if r.get("steps_to_99pct") is None else str(r["steps_to_99pct"]),
    ]


@command()
def report(run_dir: Path = typer.Argument(..., help="a folder written by `bundleflow train`")):
    """Write RUN_DIR/report/index.html (+ PNGs): curves, menu table, histograms, revenue vs baselines."""
    from bundleflow.experiments.report import write_report

    console.print(f"wrote {write_report(run_dir)}")


data_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Generate valuations (CATS in Python) and summarise valuation files.",
)
app.add_typer(data_app, name="data")


@command("generate", parent=data_app)
def data_generate(
    distribution: str = typer.Argument(
        ..., help="regions, regions-upv, regions-npv, arbitrary, arbitrary-upv, arbitrary-npv"
    ),
    out: Path = typer.Option(..., help="npz file to write (the reference files' format)"),
    items: int = typer.Option(50, "--items", "-m", help="number of goods"),
    n: int = typer.Option(5000, help="number of valuations"),
    bidders_per_instance: int = typer.Option(1, help="bidders sharing one CATS instance (1 = single-bidder mode)"),
    seed: int = typer.Option(0, help="random seed"),
    stream: str = typer.Option("auto", help="auto, numpy, or rand48 (CATS's own random stream, one run per valuation)"),
    force: bool = typer.Option(False, help="overwrite an existing file"),
):
    """Draw CATS valuations and write them as npz (atoms, values, n_atoms, provenance)."""
    from bundleflow.cats.io import generate_npz
    from bundleflow.utils.files import writable_file
    from bundleflow.utils.progress import progress_bar

    if out.suffix != ".npz":
        raise InputError(f"{out}: the output file must end in .npz")
    writable_file(out, overwrite=force)
    t0 = time.perf_counter()
    with progress_bar(f"generating {distribution}", n) as advance:
        generate_npz(out, distribution, items, n, seed, stream, bidders_per_instance, progress=advance)
    console.print(f"wrote {n} {distribution} valuations over {items} goods to {out} ({time.perf_counter() - t0:.1f} s)")


@command("stats", parent=data_app)
def data_stats(
    files: list[Path] = typer.Argument(..., help="valuation files (.npz or CATS bid text)"),
    limit: int = typer.Option(None, help="first LIMIT rows only (default: all)"),
    no_revenue: bool = typer.Option(False, help="skip the grand-bundling / item-pricing revenue"),
    json_out: Path = typer.Option(None, "--json", help="also write the statistics as JSON"),
):
    """Statistics table (atoms, items, values, mean largest atom value, item frequency, simple revenues) per file."""
    from bundleflow.cats.io import load_valuations
    from bundleflow.experiments.data_stats import valuation_stats
    from bundleflow.utils.files import atomic_write_json, writable_file
    from bundleflow.utils.progress import progress_bar
    from bundleflow.valuations.xor import XORValuation

    if json_out is not None:
        writable_file(json_out)
    stats = {}
    for f in files:
        v = load_valuations(f, limit=_limit(limit))
        if not isinstance(v, XORValuation):
            raise InputError(f"{f}: statistics need XOR valuations")
        # the item-pricing search (3 sweeps over the items) is the slow part
        with progress_bar(f"statistics of {f.name}", 0 if no_revenue else 3 * v.n_items) as advance:
            stats[str(f)] = valuation_stats(v, revenue=not no_revenue, progress=advance)
    t = Table(title=Text("valuation statistics"))
    t.add_column("statistic")
    for name in stats:
        t.add_column(Text(Path(name).name), justify="right")
    keys = [k for k in next(iter(stats.values())) if k != "item_frequency"]
    for k in keys:
        t.add_row(k, *[f"{s[k]:.4g}" if isinstance(s[k], float) else str(s[k]) for s in stats.values()])
    t.add_row(
        "item frequency min/mean/max",
        *[
            f"{min(s['item_frequency']):.3f}/{sum(s['item_frequency']) / len(s['item_frequency']):.3f}/{max(s['item_frequency']):.3f}"
            for s in stats.values()
        ],
    )
    print_table(t)
    if json_out is not None:
        atomic_write_json(json_out, stats)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

"""One run = one folder: ``config.yaml``, ``metrics.jsonl``, ``flow.pt``, ``checkpoint.pt``,
``menu.json``, ``summary.json``. Seeded, resumable, every write atomic."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import yaml

from bundleflow.config import RunConfig
from bundleflow.device import resolve_device
from bundleflow.errors import InputError
from bundleflow.io_utils import atomic_write, atomic_write_json, atomic_write_text, read_jsonl


def make_data(cfg: RunConfig):
    """``(train, val, test)`` valuations for ``cfg.data``."""
    from bundleflow import generators as gen
    from bundleflow.cats_io import load_valuations

    d = cfg.data
    n = d.n_train + d.n_val + d.n_test
    if d.kind == "file":
        v = load_valuations(d.path)
        if len(v) < n:
            raise InputError(f"{d.path}: {len(v)} rows, but n_train+n_val+n_test = {n}")
        g = torch.Generator().manual_seed(d.seed)
        v = v.subset(torch.randperm(len(v), generator=g)[:n])
    elif d.kind == "uniform_atoms":
        v = gen.uniform_atoms(n, d.n_items, d.n_atoms, d.q, d.low, d.high, seed=d.seed)
    elif d.kind == "additive":
        v = gen.additive_uniform(n, d.n_items, d.low, d.high, seed=d.seed)
    else:
        v = gen.unit_demand_uniform(n, d.n_items, d.low, d.high, seed=d.seed)
    idx = torch.arange(n)
    return v.subset(idx[: d.n_train]), v.subset(idx[d.n_train : d.n_train + d.n_val]), v.subset(idx[d.n_train + d.n_val :])


def get_flow(cfg: RunConfig, n_items: int, out: Path, device, log=print):
    from bundleflow.flow import flow_diagnostics, load_flow, save_flow, train_flow

    path = Path(cfg.flow.checkpoint) if cfg.flow.checkpoint else out / "flow.pt"
    if path.is_file():
        flow = load_flow(path, device)
        if flow.n_items != n_items:
            raise InputError(f"{path}: flow is for m={flow.n_items} items, data has m={n_items}")
        return flow
    if cfg.flow.checkpoint:
        raise InputError(f"{path}: no such flow checkpoint")
    f = cfg.flow
    t0 = time.perf_counter()
    flow = train_flow(n_items, f.steps, f.batch, f.lr, f.hidden, f.n_quad, f.seed, device)
    diag = flow_diagnostics(flow)
    diag["train_seconds"] = time.perf_counter() - t0
    save_flow(path, flow, diag)
    log(f"stage 1: m={n_items} rounding accuracy {diag['rounding_accuracy']:.3f}, item accuracy {diag['item_accuracy']:.3f}")
    return flow


def build_model(cfg: RunConfig, train, out: Path, device, log=print):
    """The menu model ``cfg.menu.model`` for ``train`` (BundleFlow trains or loads its Stage 1 flow)."""
    from bundleflow.rochetnet import BundleRochetNetMenu, RochetNetMenu
    from bundleflow.training import BundleFlowMenu
    from bundleflow.valuations import UnitDemandValuation

    mc, cap = cfg.menu, train.max_value()
    if mc.model == "bundleflow":
        return BundleFlowMenu(get_flow(cfg, train.n_items, out, device, log), mc.n_elements, mc.n_support, cap)
    if mc.model == "rochetnet":
        return RochetNetMenu(mc.n_elements, train.n_items, cap, unit_demand=isinstance(train, UnitDemandValuation))
    return BundleRochetNetMenu(mc.n_elements, train.n_items, mc.n_support, cap, mc.resample_every, seed=mc.seed)


def run_training(cfg: RunConfig, out: str | Path, resume: bool = True, progress: bool = True, log=print,
                 write_report_at_end: bool = True) -> dict:
    """Train BundleFlow end to end into ``out`` and return the summary dict."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bundleflow.experiments import baseline_rows
    from bundleflow.menu import Menu, evaluate_menu
    from bundleflow.training import MenuTrainer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.yaml"
    if cfg_path.is_file() and resume:
        old = yaml.safe_load(cfg_path.read_text())
        if old != cfg.model_dump(mode="json"):
            raise InputError(f"{out}: holds a run with a different config; use a new folder or --no-resume")
    device = resolve_device(cfg.device)
    atomic_write_text(cfg_path, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    train, val, test = make_data(cfg)
    trainer = MenuTrainer(build_model(cfg, train, out, device, log), train, val, cfg.menu, device)
    ckpt = out / "checkpoint.pt"
    metrics_path = out / "metrics.jsonl"
    if resume and ckpt.is_file():
        try:
            trainer.load_state(torch.load(ckpt, map_location=device, weights_only=False))
        except Exception as exc:
            raise InputError(f"{ckpt}: cannot resume from this checkpoint ({exc})") from exc
        log(f"resumed at step {trainer.step}")
        # keep only metric lines up to the checkpointed step
        if metrics_path.is_file():
            lines = [l for l in metrics_path.read_text().splitlines() if l.strip() and json.loads(l)["step"] <= trainer.step]
            atomic_write_text(metrics_path, "".join(l + "\n" for l in lines))
    else:
        trainer.initialise()
        atomic_write_text(metrics_path, "")

    def record(soft: float) -> dict:
        m = trainer.log_metrics(soft, t0).__dict__
        with open(metrics_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(m) + "\n")
        atomic_write(ckpt, lambda tmp: torch.save(trainer.state(), tmp))
        return m

    t0 = time.perf_counter()
    cfgm = cfg.menu
    if trainer.step == 0:
        record(float("nan"))
    with Progress(TextColumn("stage 2"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TextColumn("{task.fields[info]}"), TimeElapsedColumn(), disable=not progress) as bar:
        task = bar.add_task("train", total=cfgm.steps, completed=trainer.step, info="")
        stopped_by_budget = False
        while trainer.step < cfgm.steps:
            soft = trainer.train_step()
            over = cfgm.time_budget_s > 0 and time.perf_counter() - t0 > cfgm.time_budget_s
            if trainer.step % cfgm.log_every == 0 or trainer.step == cfgm.steps or over:
                m = record(soft)
                bar.update(task, info=f"soft {m['soft_revenue']:.4g} hard {m['hard_revenue']:.4g} null {m['null_rate']:.2f}")
            bar.update(task, completed=trainer.step)
            if over:
                stopped_by_budget = True
                log(f"time budget of {cfgm.time_budget_s:g} s reached at step {trainer.step}")
                break
    best = Menu.from_dict(trainer.best["menu"])
    final = trainer.menu()
    test_out = evaluate_menu(best, test)
    atomic_write_json(out / "menu.json", best.to_dict())
    fitted: dict = {}
    prefit = {"item_pricing": trainer.item_pricing_fit} if trainer.item_pricing_fit is not None else None
    rows = baseline_rows(train, test, atom_menu_size=min(64, cfgm.n_elements), fitted=fitted, prefit=prefit)
    # paired comparison with item pricing on the same held-out bidders
    diff = test_out.payment.double() - fitted["item_pricing"].payments(test)
    last = read_jsonl(metrics_path)[-1]
    summary = {
        "learned": {
            "model": cfgm.model,
            "test_revenue": test_out.revenue,
            "test_revenue_se": test_out.revenue_se,
            "test_null_rate": test_out.null_rate,
            "test_elements_used": test_out.elements_used,
            "test_a_la_carte_rate": test_out.a_la_carte_rate,
            "outside": cfgm.outside,
            "test_gain_over_item_pricing": float(diff.mean()),
            "test_gain_over_item_pricing_se": float(diff.std() / len(diff) ** 0.5) if len(diff) > 1 else 0.0,
            "val_revenue_best": trainer.best["hard_revenue"],
            "best_step": trainer.best["step"],
            "steps_done": trainer.step,
            "stopped_by_time_budget": stopped_by_budget,
            "final_soft_revenue": last["soft_revenue"],
            "final_hard_revenue_val": last["hard_revenue"],
            "final_test_revenue": evaluate_menu(final, test).revenue,
            "max_price": float(best.prices.max()),
            "price_cap": trainer.cap,
            "coverage": trainer.coverage,
        },
        "baselines": rows,
        "n_train": len(train),
        "n_test": len(test),
        "train_seconds": time.perf_counter() - t0,
    }
    atomic_write_json(out / "summary.json", summary)
    if write_report_at_end:
        from bundleflow.report import write_report

        try:
            log(f"report: {write_report(out)}")
        except Exception as exc:  # a failed report must not lose a finished run
            log(f"report not written: {exc}")
    return summary

"""One run = one folder: ``config.yaml``, ``metrics.jsonl``, ``flow.pt``, ``checkpoint.pt``,
``menu.json``, ``summary.json``. Seeded, resumable, every write atomic."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import yaml

from bundleflow.errors import InputError
from bundleflow.experiments.config import FlowConfig, MenuConfig, RunConfig
from bundleflow.experiments.data import make_data
from bundleflow.flow.model import BundleFlow
from bundleflow.mechanisms.bundleflow_menu import BundleFlowMenu
from bundleflow.mechanisms.model import MenuModel
from bundleflow.mechanisms.rochetnet import BundleRochetNetMenu, RochetNetMenu
from bundleflow.utils.device import machine_facts, resolve_device
from bundleflow.utils.files import (
    append_line,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    json_dumps,
    load_tensors,
    read_jsonl,
    writable_dir,
)
from bundleflow.utils.progress import progress_bar
from bundleflow.utils.yaml_files import read_yaml
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.items import UnitDemandValuation


def get_flow(cfg: RunConfig, n_items: int, out: Path, device, log=print, progress: bool = True, reuse: bool = True):
    """The Stage 1 flow: ``cfg.flow.checkpoint``, else the run folder's ``flow.pt`` (if ``reuse``), else trained."""
    from bundleflow.flow.stage1 import describe_diagnostics, flow_diagnostics, load_flow, save_flow

    path = Path(cfg.flow.checkpoint) if cfg.flow.checkpoint else out / "flow.pt"
    if path.is_file() and (reuse or cfg.flow.checkpoint):
        flow = load_flow(path, device)
        if flow.n_items != n_items:
            raise InputError(f"{path}: flow is for m={flow.n_items} items, data has m={n_items}")
        return flow
    if cfg.flow.checkpoint:
        raise InputError(f"{path}: no such flow checkpoint")
    t0 = time.perf_counter()
    flow = train_stage1(cfg.flow, n_items, device, progress)
    diag = flow_diagnostics(flow)
    diag["train_seconds"] = time.perf_counter() - t0
    save_flow(path, flow, diag)
    log(f"stage 1: m={n_items} {describe_diagnostics(diag)}")
    return flow


def train_stage1(f: FlowConfig, n_items: int, device, progress: bool = True) -> BundleFlow:
    """Stage 1 with the settings ``f`` (a progress bar per step)."""
    from bundleflow.flow.stage1 import train_flow

    with progress_bar(f"stage 1 flow (m={n_items})", f.steps, enabled=progress) as advance:
        return train_flow(
            n_items, f.steps, f.batch, f.lr, f.hidden, f.n_quad, f.seed, device, callback=lambda i, loss: advance(1)
        )


def build_model(cfg: RunConfig, train, out: Path, device, log=print, reuse_flow: bool = True, progress: bool = True):
    """The menu model ``cfg.menu.model`` for ``train`` (BundleFlow trains or loads its Stage 1 flow)."""
    flow = None
    if cfg.menu.model == "bundleflow":
        flow = get_flow(cfg, train.n_items, out, device, log, progress=progress, reuse=reuse_flow)
    return menu_model(cfg.menu, train, flow)


def menu_model(mc: MenuConfig, train: Valuation, flow: BundleFlow | None = None) -> MenuModel:
    """A fresh menu model ``mc.model`` for ``train`` (prices capped at its largest value); BundleFlow needs ``flow``."""
    cap = train.max_value()
    if mc.model == "bundleflow":
        if flow is None:
            raise InputError("menu.model=bundleflow needs a Stage 1 flow")
        return BundleFlowMenu(flow, mc.n_elements, mc.n_support, cap)
    if mc.model == "rochetnet":
        return RochetNetMenu(mc.n_elements, train.n_items, cap, unit_demand=isinstance(train, UnitDemandValuation))
    return BundleRochetNetMenu(mc.n_elements, train.n_items, mc.n_support, cap, mc.resample_every, seed=mc.seed)


@contextmanager
def run_lock(out: Path):
    """Hold an exclusive lock on run folder ``out`` (``out/.lock``); a second writer gets an InputError."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        yield
        return
    fh = open(out / ".lock", "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise InputError(
                f"{out}: another bundleflow process is writing to this run folder; wait for it or use another --out"
            ) from exc
        yield
    finally:
        fh.close()


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files an interrupted atomic write left in ``out`` (call under :func:`run_lock`)."""
    stale = [p for p in out.glob(".*.tmp*") if p.is_file()]
    for p in stale:
        p.unlink()
    return stale


def read_metrics(path: Path, up_to_step: int) -> list[str]:
    """The lines of ``metrics.jsonl`` up to ``up_to_step``; a torn last line (a crash mid-write) is dropped."""
    if not path.is_file():
        return []
    lines = [l for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
    kept = []
    for i, line in enumerate(lines):
        try:
            rec = json.loads(line)
            step = rec["step"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            if i == len(lines) - 1:
                break  # torn last line
            raise InputError(
                f"{path}: line {i + 1} is not a metrics record; move the file away to restart the log"
            ) from exc
        if step <= up_to_step:
            kept.append(line)
    return kept


def resume_trainer(trainer, ckpt: Path, metrics_path: Path, device, log=print) -> list[str]:
    """Load ``trainer``'s state (``load_state``, ``step``) from checkpoint ``ckpt`` and cut
    ``metrics.jsonl`` back to the checkpointed step; returns the metrics lines kept."""
    state = load_tensors(ckpt, device, "checkpoint")
    try:
        trainer.load_state(state)
    except Exception as exc:
        raise InputError(f"{ckpt}: cannot resume from this checkpoint ({type(exc).__name__}: {exc})") from exc
    log(f"resumed at step {trainer.step}")
    kept = read_metrics(metrics_path, trainer.step)  # lines up to the checkpointed step
    atomic_write_text(metrics_path, "".join(line + "\n" for line in kept))
    return kept


def logged_seconds(lines: list[str]) -> float:
    """Training seconds of the last of the metrics ``lines`` (0 if none)."""
    return float(json.loads(lines[-1]).get("seconds", 0.0)) if lines else 0.0


def polish_menu(menu, train, test, cap: float, rounds: int, progress: bool = True, val=None) -> dict:
    """Exact price polish of the kept menu on the training sample (:func:`bundleflow.baselines.polish_prices`).

    The polished menu is kept unless its training revenue is lower or, given ``val``, its
    validation revenue is lower (with many elements and few bidders, prices fitted to the
    training sample can overfit it). Returns the menu to keep under ``"menu"``, training,
    validation and held-out revenue before and after, the seconds taken and whether the
    polish was kept.
    """
    from bundleflow.baselines.prices import polish_prices
    from bundleflow.mechanisms.menu import evaluate_menu

    t0 = time.perf_counter()
    out = {"rounds": rounds, "train_revenue_before": evaluate_menu(menu, train).revenue}
    if test is not None:
        out["test_revenue_before"] = evaluate_menu(menu, test).revenue
    if val is not None:
        out["val_revenue_before"] = evaluate_menu(menu, val).revenue
    polished = menu
    if rounds:
        with progress_bar(
            f"price polish ({rounds} rounds x {menu.n_elements} elements)", rounds * menu.n_elements, enabled=progress
        ) as advance:
            polished = polish_prices(menu, train, cap, rounds, advance)
    after = {"train_revenue_after": evaluate_menu(polished, train).revenue}
    if test is not None:
        after["test_revenue_after"] = evaluate_menu(polished, test).revenue
    if val is not None:
        after["val_revenue_after"] = evaluate_menu(polished, val).revenue
    kept = after["train_revenue_after"] >= out["train_revenue_before"] and (
        val is None or after["val_revenue_after"] >= out["val_revenue_before"]
    )
    out.update({"polished_" + k: v for k, v in after.items()})  # what the polish reached, kept or not
    if not kept:
        polished = menu
        after = {k: out[k.replace("_after", "_before")] for k in after}
    out.update(after)
    out.update({"kept": kept, "seconds": time.perf_counter() - t0, "menu": polished})
    return out


def holds_config(out: Path, cfg: RunConfig) -> bool:
    """Whether run folder ``out`` has a ``config.yaml`` equal to ``cfg`` (fields added since it was
    written take their defaults). An unreadable one raises :class:`InputError`."""
    cfg_path = out / "config.yaml"
    if not cfg_path.is_file():
        return False
    try:
        old = read_yaml(cfg_path)
    except InputError as exc:
        raise InputError(f"{exc}; use a new folder or --no-resume") from exc
    try:
        return RunConfig.model_validate(old).record() == cfg.record()
    except Exception:
        return False


def resumes_config(out: Path, cfg: RunConfig, resume: bool, log) -> bool:
    """Whether run folder ``out`` holds ``cfg``'s run to resume (its ``config.yaml`` equal to
    ``cfg``). Another config is refused once that run reached a checkpoint or a summary; a start
    that stopped before its first checkpoint (a failure, a kill) trained nothing, so the new
    config replaces it, with a line saying so."""
    if not ((out / "config.yaml").is_file() and resume):
        return False
    if holds_config(out, cfg):
        return True
    if (out / "checkpoint.pt").is_file() or (out / "summary.json").is_file():
        raise InputError(f"{out}: holds a run with a different config; use a new folder or --no-resume")
    log(f"{out}: an earlier start with another config stopped before its first checkpoint; starting afresh")
    return False


def run_training(
    cfg: RunConfig,
    out: str | Path,
    resume: bool = True,
    progress: bool = True,
    log=print,
    write_report_at_end: bool = True,
) -> dict:
    """Train BundleFlow end to end into ``out`` and return the summary dict.

    Nothing is written before the inputs validate (data loaded, model built): a failed
    start leaves the folder as it was, and the corrected command runs.
    """
    out = writable_dir(out)
    with run_lock(out):
        remove_stale_temporaries(out)
        return _run_locked(cfg, out, resume, progress, log, write_report_at_end)


def _run_locked(cfg: RunConfig, out: Path, resume: bool, progress: bool, log, write_report_at_end: bool) -> dict:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bundleflow.experiments.baseline_table import baseline_rows
    from bundleflow.mechanisms.menu import Menu, evaluate_menu
    from bundleflow.training.learning import learning_summary, paired_gain
    from bundleflow.training.trainer import MenuTrainer

    cfg_path = out / "config.yaml"
    cfg_text = yaml.safe_dump(cfg.record(), sort_keys=False)
    same_config = resumes_config(out, cfg, resume, log)
    device = resolve_device(cfg.device)
    train, val, test = make_data(cfg)
    # the folder's flow.pt belongs to this config only if the folder's config.yaml matched above
    model = build_model(cfg, train, out, device, log, reuse_flow=same_config, progress=progress)
    trainer = MenuTrainer(model, train, val, cfg.menu, device)
    atomic_write_text(cfg_path, cfg_text)
    ckpt = out / "checkpoint.pt"
    metrics_path = out / "metrics.jsonl"
    if resume and ckpt.is_file():
        kept = resume_trainer(trainer, ckpt, metrics_path, device, log)
        logged_now = bool(kept) and json.loads(kept[-1])["step"] == trainer.step
        # Stage 2 seconds of the earlier sittings (up to the checkpoint): the clock and any time budget go on
        prior_seconds = logged_seconds(kept)
    else:
        trainer.initialise(progress=progress)
        atomic_write_text(metrics_path, "")
        logged_now = False
        prior_seconds = 0.0

    def record(soft: float) -> dict:
        m = trainer.log_metrics(soft, t0).__dict__
        append_line(metrics_path, json_dumps(m))
        atomic_write(ckpt, lambda tmp: torch.save(trainer.state(), tmp))
        return m

    t0 = time.perf_counter() - prior_seconds
    cfgm = cfg.menu
    if not logged_now:
        record(float("nan"))
    with Progress(
        TextColumn("stage 2"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        disable=not progress,
    ) as bar:
        task = bar.add_task("train", total=cfgm.steps, completed=trainer.step, info="")

        def on_step(step: int, m: dict | None) -> None:
            if m is not None:
                bar.update(
                    task, info=f"soft {m['soft_revenue']:.4g} hard {m['hard_revenue']:.4g} null {m['null_rate']:.2f}"
                )
            bar.update(task, completed=step)

        stopped_by_budget = trainer.run(t0, record, on_step)
    if stopped_by_budget:
        log(f"time budget of {cfgm.time_budget_s:g} s reached at step {trainer.step}")
    stage2_seconds = time.perf_counter() - t0
    chosen = trainer.kept()
    best = Menu.from_dict(chosen["menu"])
    final = trainer.menu()
    polish = polish_menu(best, train, test, trainer.cap, cfgm.polish_rounds, progress, val=val)
    best = polish.pop("menu")
    test_out = evaluate_menu(best, test)
    learning = learning_summary(best, trainer.start, chosen["hard_revenue"], test, test_out.payment)
    atomic_write_json(out / "menu.json", best.to_dict())
    fitted: dict = {}
    # baselines the trainer already fitted on this training split are not fitted again
    prefit = {
        k: v
        for k, v in (("item_pricing", trainer.item_pricing_fit), ("atom_menu", trainer.atom_menu_fit))
        if v is not None
    }
    rows = baseline_rows(
        train, test, atom_menu_size=min(cfgm.init_atoms, cfgm.n_elements), fitted=fitted, prefit=prefit
    )
    # paired comparison with item pricing on the same held-out bidders
    gain_ip, gain_ip_se = paired_gain(test_out.payment, fitted["item_pricing"].payments(test))
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
            "test_gain_over_item_pricing": gain_ip,
            "test_gain_over_item_pricing_se": gain_ip_se,
            "val_revenue_best": trainer.best["hard_revenue"],
            "best_step": trainer.best["step"],
            "val_revenue_kept": chosen["hard_revenue"],
            "kept_step": chosen["step"],
            "steps_done": trainer.step,
            "stopped_by_time_budget": stopped_by_budget,
            "final_soft_revenue": last["soft_revenue"],
            "final_hard_revenue_val": last["hard_revenue"],
            "final_test_revenue": evaluate_menu(final, test).revenue,
            "max_price": float(best.prices.max()),
            "price_cap": trainer.cap,
            "coverage": trainer.coverage,
            "train_revenue": polish["train_revenue_after"],
            "polish": polish,
            "learning": learning,
        },
        "baselines": rows,
        "n_train": len(train),
        "n_test": len(test),
        "stage2_seconds": stage2_seconds,
        "train_seconds": time.perf_counter() - t0,
        "machine": machine_facts(device),  # this sitting's, if the run was resumed
    }
    atomic_write_json(out / "summary.json", summary)
    if write_report_at_end:
        from bundleflow.experiments.report import write_report

        try:
            log(f"report: {write_report(out)}")
        except Exception as exc:  # a failed report must not lose a finished run
            log(f"report not written: {exc}")
    return summary

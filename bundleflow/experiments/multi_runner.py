"""A multi-bidder run (``menu.model=gemnet``) in one folder, like a single-bidder run:
``config.yaml``, ``metrics.jsonl``, ``checkpoint.pt`` (resumable), ``mechanism.pt`` (the
trained menus and the transform's price shifts), ``summary.json``.

Steps: train GemNet on fresh profiles drawn every step (the data's distribution), evaluate it
exactly on the held-out profiles, make it compatible on a grid of bids
(:func:`bundleflow.training.compatibility.make_compatible`), evaluate again, and evaluate the
baselines (VCG; item-by-item second price with a reserve tuned on the training profiles, which
for i.i.d. items is Myerson's auction per item) on the same held-out profiles.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import yaml

from bundleflow.errors import InputError
from bundleflow.experiments.config import RunConfig
from bundleflow.experiments.data import load_multi_data
from bundleflow.experiments.runner import (
    logged_seconds,
    read_metrics,
    remove_stale_temporaries,
    resume_trainer,
    resumes_config,
    run_lock,
)
from bundleflow.mechanisms.multi import GemNet, MultiMenuMechanism, MultiOutcome, evaluate_multi
from bundleflow.utils.device import machine_facts, resolve_device
from bundleflow.utils.files import (
    append_line,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    json_dumps,
    load_tensors,
    writable_dir,
)
from bundleflow.utils.progress import progress_bar
from bundleflow.valuations.base import Valuation


def is_xor(cfg: RunConfig) -> bool:
    """Whether ``cfg``'s bidders are XOR bidders (generated atoms or a CATS file)."""
    return cfg.data.kind in ("uniform_atoms", "file")


def gemnet_choice_scale(cfg: RunConfig, model: GemNet, train: list[Valuation] | None = None) -> float:
    """The unit of GemNet's softmax temperature: the spread of the values, which a common offset
    does not change (issue 39). Item bidders U[low, high]: ``high - low``; XOR bidders: the mean
    minus the least grand-bundle value over the training bidders. Equal to the model's
    ``value_scale`` when values start at 0; that scale when the spread is 0."""
    if is_xor(cfg) and train is not None:
        grand = torch.cat([v.grand_value().double() for v in train])
        spread = float(grand.mean() - grand.min())
    else:
        spread = cfg.data.high - cfg.data.low
    return spread if spread > 1e-9 * model.value_scale else model.value_scale


def gemnet_model(cfg: RunConfig, train: list[Valuation] | None = None) -> GemNet:
    """A fresh GemNet for ``cfg``, seeded by ``menu.seed``. Item bidders: prices capped at the
    largest bundle value ``data.high * m`` (unit demand: ``data.high``), value scale
    ``data.high``. XOR bidders (deterministic bundles) take both from the training bidders
    ``train``: cap the largest value, scale the mean value of the grand bundle."""
    d = cfg.data
    unit = d.kind == "unit_demand"
    m = d.n_items
    if is_xor(cfg):
        if train is None:
            raise InputError("GemNet for XOR bidders needs the training bidders (price cap and value scale)")
        m = train[0].n_items
        grand = torch.cat([v.grand_value().double() for v in train])
        cap, scale = float(grand.max()), float(grand.mean())
        if not scale > 0:
            raise InputError("GemNet: the training bidders value nothing (all values 0)")
    else:
        cap, scale = d.high * (1 if unit else m), d.high
    return GemNet(
        d.n_bidders,
        m,
        cfg.menu.n_elements,
        cap=cap,
        value_scale=scale,
        unit_demand=unit,
        hidden=tuple(cfg.gemnet.hidden),
        generator=torch.Generator().manual_seed(cfg.menu.seed),
        item_prices=cfg.gemnet.item_prices,
        reserve=cfg.gemnet.reserve,
        bundles=is_xor(cfg),
        serial=cfg.gemnet.serial,
        conflict_prices=cfg.gemnet.conflict_prices,
        affine_reserve=affine_reserve(train) if cfg.gemnet.affine else None,
        entry_fee=cfg.gemnet.entry_fee,
    )


def affine_reserve(train) -> float:
    """The per-item seller's reserve of VCG with a reserve, tuned on the first
    ``TUNE_PROFILES`` training profiles (the baseline's, and affine GemNet's)."""
    from bundleflow.baselines.multi import tuned_xor_reserve

    return tuned_xor_reserve([v.subset(torch.arange(min(len(v), TUNE_PROFILES))) for v in train])


def bidder_pool(train: list[Valuation]) -> Valuation:
    """All training bidders in one batch, to draw profiles of independent bidders from (XOR
    bidders of :func:`~bundleflow.experiments.data.make_multi_data`: rows of one batch, so
    their atom tensors have one width)."""
    from bundleflow.valuations.xor import XORValuation

    return XORValuation(
        torch.cat([v.atoms for v in train]),  # type: ignore[attr-defined]
        torch.cat([v.values for v in train]),  # type: ignore[attr-defined]
    )


def grid_levels(cfg: RunConfig) -> torch.Tensor:
    """``[L]`` the transform's grid: the centres of ``L`` equal cells of ``[low, high]``."""
    d, L = cfg.data, cfg.gemnet.grid_levels
    return d.low + (d.high - d.low) * (torch.arange(L, dtype=torch.float64) + 0.5) / L


TUNE_PROFILES = 1000  # training profiles on which the XOR reserve is tuned (enumeration per profile)


def multi_baselines(train, test) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Rows of the exactly evaluated baselines on ``test`` (additive: VCG, item-wise second
    price with a tuned reserve, and with several items the same with an entry fee, reserve and
    fee tuned together on ``train``; unit demand: VCG when the assignments can be enumerated; XOR:
    VCG, and VCG with a per-item seller's reserve tuned on up to ``TUNE_PROFILES`` training
    profiles; all: sequential posted prices at a common price tuned on ``train``), and
    each one's ``[B]`` revenue per held-out profile (for paired comparisons)."""
    from bundleflow.baselines.multi import (
        MAX_VCG_ASSIGNMENTS,
        item_auctions_with_entry_fee,
        second_price_items,
        sequential_posted_prices,
        tuned_entry_fee,
        tuned_posted_price,
        tuned_reserve,
        vcg,
        xor_vcg,
    )
    from bundleflow.valuations.items import AdditiveValuation
    from bundleflow.valuations.xor import XORValuation

    rows, pay = [], {}
    n, m = len(test), test[0].n_items

    def add(method: str, out: MultiOutcome, seconds: float) -> None:
        rows.append(
            {
                "method": method,
                "test_revenue": out.revenue,
                "test_revenue_se": out.revenue_se,
                "over_allocation_rate": out.over_rate,
                "fit_seconds": seconds,
            }
        )
        pay[method] = out.payment.sum(1)

    if isinstance(test[0], AdditiveValuation):
        t0 = time.perf_counter()
        r = tuned_reserve(train)
        add(f"item auctions, reserve {r:.3g}", second_price_items(test, r), time.perf_counter() - t0)
        add("vcg", second_price_items(test, 0.0), 0.0)
        if m > 1:  # one item: the fee adds nothing to Myerson's auction
            t0 = time.perf_counter()
            r, f = tuned_entry_fee(train)
            out = item_auctions_with_entry_fee(test, r, f)
            add(f"item auctions, reserve {r:.3g}, entry fee {f:.3g}", out, time.perf_counter() - t0)
    elif isinstance(test[0], XORValuation):  # VCG and the affine maximiser with a seller's reserve
        t0 = time.perf_counter()
        add("vcg", xor_vcg(test, 0.0), time.perf_counter() - t0)
        t0 = time.perf_counter()
        r = affine_reserve(train)
        add(f"vcg, item reserve {r:.3g}", xor_vcg(test, r), time.perf_counter() - t0)
    elif (n + 1) ** m <= MAX_VCG_ASSIGNMENTS:
        t0 = time.perf_counter()
        add("vcg", vcg(test), time.perf_counter() - t0)
    t0 = time.perf_counter()
    q = tuned_posted_price(train)
    add(f"sequential posted price {q:.3g}", sequential_posted_prices(test, q), time.perf_counter() - t0)
    return rows, pay


def load_mechanism(path: str | Path, device="cpu"):
    """The mechanism a run saved in ``mechanism.pt``: GemNet, with its transform's shifts if any."""
    from bundleflow.training.compatibility import ShiftedMenus

    state = load_tensors(path, device, "mechanism")
    if not isinstance(state, dict):
        raise InputError(
            f"{path}: not a GemNet mechanism file (holds a {type(state).__name__}, not a dict of its parts)"
        )
    try:
        spec = {**state["gemnet"], "hidden": tuple(state["gemnet"]["hidden"])}
        # the sizes must be those of the saved weights (a crafted file must not make us allocate)
        shapes = {k: tuple(v.shape) for k, v in state["state"].items()}
        K, m, n = spec["n_elements"], spec["n_items"], spec["n_bidders"]
        outputs = GemNet.outputs(
            K, m, bool(spec.get("item_prices")), spec.get("affine_reserve") is not None, bool(spec.get("entry_fee"))
        )
        if shapes.get(f"nets.{n - 1}.{2 * len(spec['hidden']) if n > 1 else 0}.bias") != (outputs,):
            raise TypeError("the sizes do not match the saved weights")
        net = GemNet(**spec)
        net.load_state_dict(state["state"])
    except (KeyError, TypeError, RuntimeError, AttributeError) as exc:
        raise InputError(f"{path}: not a GemNet mechanism file ({type(exc).__name__}: {exc})") from exc
    net.eval()
    mechanism = net if state.get("shifts") is None else ShiftedMenus(net, state["levels"], state["shifts"])
    withhold = state.get("withhold") or 0.0
    if withhold:
        from bundleflow.training.withholding import WithheldMenus

        try:
            return WithheldMenus(mechanism, float(withhold))
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}: not a GemNet mechanism file (withhold: {exc})") from exc
    return mechanism


def _withhold(mechanism, setting, val, before: MultiOutcome, progress: bool):
    """``(mechanism, share, report)``: ``mechanism`` withheld at ``setting`` (a share, or "auto":
    :func:`~bundleflow.training.withholding.choose_withholding` on the validation profiles), and
    the held-out revenue and over-allocation before it (``before``: its held-out outcome)."""
    from bundleflow.training.withholding import WithheldMenus, choose_withholding

    with progress_bar("withholding", 1, enabled=progress) as advance:
        tried = None
        if setting == "auto":
            share, tried = choose_withholding(mechanism, val)
        else:
            share = float(setting)
        advance(1)
    report = {
        "share": share,
        "chosen_by": "validation profiles" if tried is not None else "config",
        "validation_tried": tried,
        "test_revenue_before": before.revenue,
        "test_over_allocation_rate_before": before.over_rate,
    }
    return (WithheldMenus(mechanism, share) if share else mechanism), share, report


def profiles_from_file(path: str | Path, n_bidders: int, unit_demand: bool = False, limit: int | None = None):
    """Held-out profiles for a saved mechanism of ``n_bidders`` bidders, from a file:

    * ``.npy``: item values ``[B, n, m]`` (additive bidders, or unit demand with ``unit_demand``);
    * a CATS ``.npz`` or bid file: XOR bidders, the rows of one CATS instance per profile when
      every instance has ``n_bidders`` rows, else ``n_bidders`` consecutive rows per profile.

    ``limit`` keeps the first ``limit`` profiles. Returns one valuation per bidder."""
    import numpy as np

    from bundleflow.experiments.data import load_xor_instances
    from bundleflow.valuations.items import AdditiveValuation, UnitDemandValuation

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix == ".npy":
        try:
            values = torch.from_numpy(np.load(path, allow_pickle=False)).double()
        except ValueError as exc:
            raise InputError(f"{path}: not a numeric .npy array ({exc})") from exc
        if values.dim() != 3 or values.shape[1] != n_bidders:
            raise InputError(f"{path}: item values must have shape [B, {n_bidders}, m], got {tuple(values.shape)}")
        values = values[:limit] if limit is not None else values
        cls = UnitDemandValuation if unit_demand else AdditiveValuation
        return [cls(values[:, i].contiguous()) for i in range(n_bidders)]
    xor, rows = load_xor_instances(path, n_bidders)
    if rows is None:
        P = len(xor) // n_bidders
        rows = torch.arange(P * n_bidders).reshape(P, n_bidders)
    rows = rows[:limit] if limit is not None else rows
    if len(rows) == 0:
        raise InputError(f"{path}: {len(xor)} rows hold no profile of {n_bidders} bidders")
    return [xor.subset(rows[:, i]) for i in range(n_bidders)]


def run_multi_training(cfg: RunConfig, out: str | Path, resume: bool = True, progress: bool = True, log=print) -> dict:
    """Train, transform and evaluate GemNet into run folder ``out``; returns the summary.
    Nothing is written before the inputs validate."""
    if cfg.menu.model != "gemnet":
        raise InputError(f"a multi-bidder run needs menu.model=gemnet, got {cfg.menu.model}")
    out = writable_dir(out)
    with run_lock(out):
        remove_stale_temporaries(out)
        return _run_locked(cfg, out, resume, progress, log)


def _run_locked(cfg: RunConfig, out: Path, resume: bool, progress: bool, log) -> dict:
    from bundleflow.training.compatibility import make_compatible
    from bundleflow.training.gemnet import GemNetTrainer, GemNetTraining

    cfg_path = out / "config.yaml"
    resumes_config(out, cfg, resume, log)
    device = resolve_device(cfg.device)
    d, mc, gc = cfg.data, cfg.menu, cfg.gemnet
    with progress_bar("drawing profiles", 1, enabled=progress) as advance:
        train, val, test, independent = load_multi_data(cfg)
        advance(1)
    model = gemnet_model(cfg, train).to(device)
    n, m = d.n_bidders, model.n_items
    if gc.start == "item_auctions":  # the tuned item auctions (overwritten by a checkpoint)
        from bundleflow.baselines.multi import tuned_entry_fee, tuned_reserve

        fee = 0.0
        if gc.entry_fee:  # with their tuned entry fee
            reserve, fee = tuned_entry_fee(train)
        else:
            reserve = tuned_reserve(train)
        model.start_as_item_auctions(max(reserve, 1e-3 * model.value_scale), fee)
    xor = is_xor(cfg)
    pool = bidder_pool(train) if xor and independent else None

    def sample(B: int, g: torch.Generator) -> torch.Tensor | list[Valuation]:
        if pool is not None:  # independent bidders drawn from the training bidders
            return [pool.subset(torch.randint(len(pool), (B,), generator=g)) for _ in range(n)]
        if xor:  # bidders of one CATS instance: whole training profiles
            rows = torch.randint(len(train[0]), (B,), generator=g)
            return [v.subset(rows) for v in train]
        return d.low + (d.high - d.low) * torch.rand(B, n, m, generator=g, dtype=torch.float64)

    training = GemNetTraining(
        steps=mc.steps,
        batch=mc.batch,
        lr=gc.lr,
        lr_final=gc.lr_final,
        tau_start=mc.tau_start,
        tau_end=mc.tau_end,
        penalty_start=gc.penalty_start,
        penalty_end=gc.penalty_end,
        log_every=mc.log_every,
    )
    keep = True if gc.start == "item_auctions" else None  # None: menus compatible by construction
    trainer = GemNetTrainer(
        model,
        sample,
        training,
        torch.Generator().manual_seed(mc.seed + 1),
        validation=val,
        keep_best=keep,
        keep_margin_se=gc.keep_margin_se,
        choice_scale=gemnet_choice_scale(cfg, model, train),
    )
    atomic_write_text(cfg_path, yaml.safe_dump(cfg.record(), sort_keys=False))
    ckpt, metrics_path = out / "checkpoint.pt", out / "metrics.jsonl"
    prior_seconds = 0.0
    if resume and ckpt.is_file():
        prior_seconds = logged_seconds(resume_trainer(trainer, ckpt, metrics_path, device, log))
    else:
        atomic_write_text(metrics_path, "")

    with progress_bar("gemnet training", mc.steps, enabled=progress) as advance:
        advance(trainer.step)
        done = [trainer.step]

        def record(row: dict) -> None:
            append_line(metrics_path, json_dumps(row))
            atomic_write(ckpt, lambda tmp: torch.save(trainer.state(), tmp))
            advance(row["step"] - done[0])
            done[0] = row["step"]

        stopped = trainer.run(record, mc.time_budget_s, prior_seconds)
    if stopped:
        log(f"time budget of {mc.time_budget_s:g} s reached at step {trainer.step}")
    kept = trainer.restore_best()
    if kept is not None:
        log(
            f"kept the menus of step {kept['step']}: validation revenue {kept['validation_revenue']:.4g} "
            f"(start {kept['start_validation_revenue']:.4g}"
            + (f"; paired gain s.e. {kept['validation_gain_se']:.2g}" if kept["validation_gain_se"] else "")
            + (f"; kept only above {kept['keep_margin_se']:g} s.e." if kept["keep_margin_se"] else "")
            + ")"
        )
    model.eval()
    before = evaluate_multi(model, test)
    learned = {
        "model": "gemnet",
        "n_bidders": n,
        "n_items": m,
        "steps_done": trainer.step,
        "stopped_by_time_budget": stopped,
        "before_transform": before.summary(),
        "kept": kept,  # menus compatible by construction: the validation-best step (None: the last)
    }
    mechanism: MultiMenuMechanism = model
    current: MultiOutcome | None = before  # the held-out outcome of `mechanism`, while it is known
    shifts = None
    levels = grid_levels(cfg)
    if xor:
        learned["transform"] = None
        learned["serial"], learned["conflict_prices"], learned["affine"] = gc.serial, gc.conflict_prices, gc.affine
        if gc.affine:
            learned["affine_reserve"] = model.affine_reserve
        variant = "serial menus" if gc.serial else "conflict prices" if gc.conflict_prices else "affine menus"
        learned["transform_skipped"] = (
            f"{variant}: compatible by construction"
            if model.compatible_by_construction
            else "XOR bidders: no grid of bids; over-allocation is reported as measured"
        )
    elif gc.grid_levels > 0:
        with progress_bar("compatibility transform (MILP)", 1, enabled=progress) as advance:
            mechanism, report = make_compatible(
                model, levels, time_limit=gc.transform_time_limit_s, optimise=gc.transform == "optimise"
            )
            advance(1)
        shifts = mechanism.shifts
        learned["transform"] = report.summary()
        current = None
    withhold = 0.0
    if not xor and gc.withhold != 0:
        if current is None:
            current = evaluate_multi(mechanism, test)
        mechanism, withhold, learned["withholding"] = _withhold(mechanism, gc.withhold, val, current, progress)
        if withhold:
            current = None
    # without a grid the certificate starts from one box, the whole value space
    first_boxes = gc.grid_levels ** (n * m) if gc.grid_levels > 0 else 1
    if not xor and gc.certify_boxes > 0 and first_boxes <= gc.certify_boxes:
        from bundleflow.training.certificate import certify

        with progress_bar("certificate off the grid", 1, enabled=progress) as advance:
            cert = certify(mechanism, d.low, d.high, levels=1, max_cells=gc.certify_boxes)
            advance(1)
        learned["certificate"] = cert.summary()
    after = current if current is not None else evaluate_multi(mechanism, test)
    learned.update({f"test_{k}": v for k, v in after.summary().items()})
    learned["test_revenue_before_transform"] = before.revenue
    atomic_write(
        out / "mechanism.pt",
        lambda tmp: torch.save(
            {
                "gemnet": model.config(),
                "state": model.state_dict(),
                "levels": levels if shifts is not None else None,
                "shifts": shifts,
                "withhold": withhold,
            },
            tmp,
        ),
    )
    with progress_bar("baselines", 1, enabled=progress) as advance:
        rows, base_pay = multi_baselines(train, test)
        advance(1)
    if rows:  # paired, on the same held-out profiles
        from bundleflow.training.learning import paired_gain

        best = max(rows, key=lambda r: r["test_revenue"])["method"]
        gain, gain_se = paired_gain(after.payment.sum(1), base_pay[best])
        learned.update(
            {"best_baseline": best, "test_gain_over_best_baseline": gain, "test_gain_over_best_baseline_se": gain_se}
        )
    summary = {
        "learned": learned,
        "baselines": rows,
        "n_bidders": n,
        "n_test": len(test[0]),
        "train_seconds": logged_seconds(read_metrics(metrics_path, trainer.step)),
        "machine": machine_facts(device),  # this sitting's, if the run was resumed
    }
    atomic_write_json(out / "summary.json", summary)
    return summary

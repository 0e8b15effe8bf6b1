"""One-page report of a run folder: ``bundleflow report RUN_DIR``.

Reads ``config.yaml``, ``metrics.jsonl``, ``menu.json`` and ``summary.json``; rebuilds the
held-out split from the config (data are seeded), evaluates the saved menu exactly on
it and writes ``RUN_DIR/report/index.html`` (self-contained: PNGs are embedded as data
URIs and also written beside it) with:

* soft vs hard revenue over training (``revenue_curve.png``);
* the menu as a table sorted by sales: bundles with probabilities, price, share of
  bidders choosing it, their mean utility;
* the bundle-size histogram of the offered lotteries (``bundle_sizes.png``);
* price vs expected bundle value of each element (``price_vs_value.png``);
* revenue against grand bundling, item pricing and the welfare bound (``revenue_bars.png``);
* for item valuations with m <= 2, the choice regions in value space (``regions.png``).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import torch

from bundleflow.errors import InputError
from bundleflow.training.learning import describe
from bundleflow.utils.files import atomic_write, atomic_write_text, own_folder, read_json, read_jsonl
from bundleflow.utils.yaml_files import read_yaml

REQUIRED = ("config.yaml", "metrics.jsonl", "menu.json", "summary.json")
MAX_ROWS = 50


def _load_run(run: Path):
    from bundleflow.experiments.config import RunConfig
    from bundleflow.mechanisms.menu import read_menu

    if not run.is_dir():
        raise InputError(f"{run}: no such run folder")
    missing = [f for f in REQUIRED if not (run / f).is_file()]
    if missing:
        raise InputError(f"{run}: incomplete run folder, missing {', '.join(missing)} (has the run finished?)")
    try:
        cfg = RunConfig(**read_yaml(run / "config.yaml"))
    except Exception as exc:
        raise InputError(f"{run / 'config.yaml'}: not a bundleflow run config ({exc})") from exc
    try:
        metrics = read_jsonl(run / "metrics.jsonl")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"{run / 'metrics.jsonl'}: not valid JSON lines ({type(exc).__name__}: {exc})") from None
    summary = read_json(run / "summary.json", "run summary")
    menu = read_menu(run / "menu.json")
    if not metrics:
        raise InputError(f"{run / 'metrics.jsonl'}: empty, nothing to plot")
    if "learned" not in summary or "baselines" not in summary:
        raise InputError(f"{run / 'summary.json'}: lacks the 'learned' or 'baselines' section")
    return cfg, metrics, summary, menu


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    _plt().close(fig)


def _bundle_str(b: torch.Tensor) -> str:
    items = torch.nonzero(b > 0.5).flatten().tolist()
    if len(items) == b.numel():
        return "all items"
    if not items:
        return "nothing"
    s = ",".join(str(i) for i in items[:12])
    return "{" + s + (f",... ({len(items)} items)" if len(items) > 12 else "") + "}"


def _start_and_polish(learned: dict) -> str:
    """A paragraph: which start the run kept and the final price polish's exact revenues (absent in old runs)."""
    cov, pol = learned.get("coverage", {}), learned.get("polish")
    parts = []
    if "start" in cov:
        parts.append(f"Start kept: {html.escape(cov['start'])} (training revenue {cov['start_train_revenue']:.4f}).")
    if pol:
        parts.append(
            f"Final price polish ({pol['rounds']} rounds): training revenue "
            f"{pol['train_revenue_before']:.4f} &rarr; {pol['train_revenue_after']:.4f}, held-out "
            f"{pol['test_revenue_before']:.4f} &rarr; {pol['test_revenue_after']:.4f}."
        )
        if not pol["kept"]:
            parts.append(
                f"Not kept: the polished prices earned {pol['polished_train_revenue_after']:.4f} on training "
                f"but less on validation ({pol.get('polished_val_revenue_after', float('nan')):.4f} vs "
                f"{pol.get('val_revenue_before', float('nan')):.4f})."
            )
    if "learning" in learned:
        parts.append(html.escape(describe(learned["learning"])) + ".")
    return f'<p id="polish">{" ".join(parts)}</p>' if parts else ""


def lottery_terms(menu, j: int, min_prob: float = 1e-3) -> list[tuple[str, float]]:
    """Element ``j``'s lottery as ``(bundle, probability)``: identical supports merged (their
    probabilities added), terms below ``min_prob`` dropped, most likely first."""
    total: dict[str, float] = {}
    for d in range(menu.bundles.shape[1]):
        b = _bundle_str(menu.bundles[j, d])
        total[b] = total.get(b, 0.0) + float(menu.probs[j, d])
    return sorted(((b, p) for b, p in total.items() if p > min_prob), key=lambda t: -t[1])


def write_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report/index.html`` and its PNGs; returns the HTML path."""
    from bundleflow.experiments.data import make_data
    from bundleflow.mechanisms.menu import evaluate_menu, expected_values

    run = Path(run_dir)
    cfg, metrics, summary, menu = _load_run(run)
    try:
        _, _, test = make_data(cfg)
    except (InputError, OSError) as exc:
        raise InputError(f"{run}: cannot rebuild the held-out data from config.yaml ({exc})") from exc
    if test.n_items != menu.n_items:
        raise InputError(f"{run}: menu.json has {menu.n_items} items but the run's data has {test.n_items}")
    out = evaluate_menu(menu, test)
    ev = expected_values(menu, test)  # [B, J]
    rep = own_folder(run / "report")  # a link there is replaced, never followed
    plt = _plt()
    pngs = {}

    # 1. soft vs hard revenue
    fig, ax = plt.subplots(figsize=(6, 3.6))
    steps = [m["step"] for m in metrics]
    ax.plot(steps, [m["soft_revenue"] for m in metrics], label="soft (relaxed, validation)")
    ax.plot(steps, [m["hard_revenue"] for m in metrics], label="hard (exact, validation)")
    ax.set_xlabel("step"), ax.set_ylabel("revenue"), ax.legend(), ax.set_title("revenue during training")
    _save(fig, rep / "revenue_curve.png")
    pngs["revenue_curve"] = "soft vs hard revenue"

    # 2. bundle sizes of the offered lotteries (probability-weighted), and of the bundles sold
    sizes = menu.bundles.sum(-1)  # [J, D]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    m = menu.n_items
    bins = torch.arange(m + 2).double() - 0.5
    ax.hist(
        sizes.flatten().numpy(),
        bins=bins.numpy(),
        weights=menu.probs.flatten().numpy(),
        alpha=0.6,
        label="offered (per element)",
    )
    sold = out.choice[out.choice >= 0]
    if len(sold):
        w = (menu.probs[sold]).flatten().numpy() / len(sold) * menu.n_elements
        ax.hist(sizes[sold].flatten().numpy(), bins=bins.numpy(), weights=w, alpha=0.6, label="sold (scaled)")
    ax.set_xlabel("bundle size"), ax.set_ylabel("elements"), ax.legend(), ax.set_title("bundle sizes")
    _save(fig, rep / "bundle_sizes.png")
    pngs["bundle_sizes"] = "bundle-size histogram"

    # 3. price vs expected value
    fig, ax = plt.subplots(figsize=(6, 3.6))
    mean_ev = ev.mean(0).cpu()
    share = out.sales.double() / len(test)
    up = torch.argsort(share)  # most chosen drawn last (on top); size grows with the share
    sc = ax.scatter(
        mean_ev[up].numpy(),
        menu.prices[up].numpy(),
        c=share[up].numpy(),
        cmap="viridis",
        s=(12 + 200 * share[up]).numpy(),
        edgecolors="k",
        linewidths=0.3,
    )
    hi = float(max(mean_ev.max(), menu.prices.max()))
    ax.plot([0, hi], [0, hi], ls="--", lw=0.8, color="grey")
    fig.colorbar(sc, label="share choosing")
    ax.set_xlabel("mean expected value over held-out bidders"), ax.set_ylabel("price"), ax.set_title("price vs value")
    _save(fig, rep / "price_vs_value.png")
    pngs["price_vs_value"] = "price vs expected bundle value"

    # 4. revenue bars
    L = summary["learned"]
    rows = [(L.get("model", "learned"), L["test_revenue"], L.get("test_revenue_se", 0.0))]
    rows += [(r["method"], r["test_revenue"], r.get("test_revenue_se", 0.0)) for r in summary["baselines"]]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.bar(
        [r[0] for r in rows],
        [r[1] for r in rows],
        yerr=[r[2] or 0 for r in rows],
        color=["C0"] + ["C7"] * (len(rows) - 1),
    )
    ax.set_ylabel("held-out revenue (exact)"), ax.set_title("revenue vs baselines")
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    _save(fig, rep / "revenue_bars.png")
    pngs["revenue_bars"] = "revenue against baselines"

    # 5. choice regions for two-item item valuations
    if m <= 2 and cfg.data.kind in ("additive", "unit_demand"):
        from bundleflow.valuations.items import AdditiveValuation, UnitDemandValuation

        n = 120
        lo, hi = cfg.data.low, cfg.data.high
        g = torch.linspace(lo, hi, n, dtype=torch.float64)
        grid = torch.cartesian_prod(g, g) if m == 2 else g[:, None]
        cls = AdditiveValuation if cfg.data.kind == "additive" else UnitDemandValuation
        res = evaluate_menu(menu, cls(grid))
        fig, ax = plt.subplots(figsize=(4.6, 4))
        if m == 2:
            img = ax.imshow(
                res.choice.view(n, n).T.numpy(),
                origin="lower",
                extent=(lo, hi, lo, hi),
                cmap="tab20",
                interpolation="nearest",
            )
            ax.set_xlabel("value of item 0"), ax.set_ylabel("value of item 1")
        else:
            img = ax.scatter(g.numpy(), res.payment.numpy(), c=res.choice.numpy(), cmap="tab20", s=6)
            ax.set_xlabel("value"), ax.set_ylabel("payment")
        fig.colorbar(img, label="chosen element (-1 = nothing)")
        ax.set_title("choice regions")
        _save(fig, rep / "regions.png")
        pngs["regions"] = "allocation regions in value space"

    # the page
    order = torch.argsort(out.sales, descending=True)
    util = (ev - menu.prices.to(ev.device)[None]).cpu()
    trs = []
    for j in order[:MAX_ROWS].tolist():
        who = out.choice == j
        mu = f"{float(util[who, j].mean()):.4g}" if who.any() else ""
        lot = "; ".join(f"{b} w.p. {p:.3f}" for b, p in lottery_terms(menu, j))
        trs.append(
            f"<tr><td>{j}</td><td>{html.escape(lot)}</td><td>{float(menu.prices[j]):.4g}</td>"
            f"<td>{float(share[j]):.3f}</td><td>{mu}</td></tr>"
        )
    rev_rows = "".join(
        f"<tr><td>{html.escape(r[0])}</td><td>{r[1]:.4f}</td><td>{(r[2] or 0):.4f}</td></tr>" for r in rows
    )
    imgs = "".join(
        f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{base64.b64encode((rep / (k + ".png")).read_bytes()).decode()}">'
        f"<figcaption>{html.escape(t)} ({k}.png)</figcaption></figure>"
        for k, t in pngs.items()
    )
    last = metrics[-1]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bundleflow report: {html.escape(run.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}#revenue-table td:first-child,#menu-table td:nth-child(2){{text-align:left}}figure{{display:inline-block;margin:0.5em}}</style>
</head><body>
<h1>bundleflow report: {html.escape(str(run))}</h1>
<p>Method <b>{html.escape(str(L.get("model", "learned")))}</b>{" with a la carte item prices" if L.get("outside") == "item_prices" else ""};
{summary.get("n_train", "?")} training / {len(test)} held-out valuations over {m} items.
Every revenue on this page is the exact (hard) evaluation of the mechanism; the relaxed (soft) revenue is shown only as a training curve.</p>
<h2>Revenue</h2>
<table id="revenue-table"><thead><tr><th>method</th><th>held-out revenue</th><th>± s.e.</th></tr></thead><tbody>{rev_rows}</tbody></table>
<p>Held-out null rate {out.null_rate:.3f}, a la carte rate {out.a_la_carte_rate:.3f}, elements used {out.elements_used} of {menu.n_elements};
last logged step {last["step"]}: soft {last["soft_revenue"]:.4g}, hard {last["hard_revenue"]:.4g}, largest price {float(menu.prices.max()):.4g}.</p>
{_start_and_polish(L)}
{imgs}
<h2>Menu (top {min(MAX_ROWS, menu.n_elements)} elements by sales)</h2>
<table id="menu-table"><thead><tr><th>element</th><th>lottery</th><th>price</th><th>share choosing</th><th>mean utility of choosers</th></tr></thead>
<tbody>{"".join(trs)}</tbody></table>
</body></html>
"""
    path = rep / "index.html"
    atomic_write_text(path, page)
    return path

"""Stage 1: train the flow by rectified flow, check how it rounds, save and load it."""

from __future__ import annotations

import math

import torch

from bundleflow.errors import InputError
from bundleflow.flow.model import DOMAIN, BundleFlow


@torch.no_grad()
def flow_diagnostics(flow: BundleFlow, n: int = 4096, seed: int = 0) -> dict:
    """Rounding accuracy, share of distinct bundles and bundle-size histogram on ``n`` points of the domain."""
    g = torch.Generator().manual_seed(seed)
    dev = flow.quad_t.device
    s0 = torch.rand(n, flow.n_items, generator=g).to(dev)
    b = flow.bundles(s0)
    target = (s0 > 0.5).float()
    sizes = b.sum(-1).long().cpu()
    return {
        "rounding_accuracy": float((b == target).all(-1).float().mean()),
        "item_accuracy": float((b == target).float().mean()),
        "distinct_share": float(torch.unique(b, dim=0).shape[0] / n),
        "size_hist": torch.bincount(sizes, minlength=flow.n_items + 1).tolist(),
        "eta_integral": float(flow.eta_integral()),
    }


def describe_diagnostics(diag: dict) -> str:
    """:func:`flow_diagnostics` in words: what each number measures and how to read it."""
    item, whole = diag["item_accuracy"], diag["rounding_accuracy"]
    m = max(1, len(diag.get("size_hist", [0, 0])) - 1)
    possible = f" (of {2**m} bundles)" if m <= 12 else ""
    return (
        f"item accuracy {item:.3f} (share of items a start point s0 rounds to the same side of 1/2 after the "
        f"flow); whole-bundle accuracy {whole:.3f} (all {m} items at once, about item accuracy^m = "
        f"{item**m:.3f} when items err independently); {round(diag['distinct_share'] * 4096)} distinct "
        f"bundles reached from 4096 random starts{possible}. Stage 2 evaluates whatever bundle the flow reaches exactly, so lower accuracy "
        "only makes some bundles harder to place, never changes the revenue reported."
    )


def train_flow(
    n_items: int,
    steps: int = 2000,
    batch: int = 512,
    lr: float = 1e-3,
    hidden: int = 128,
    n_quad: int = 16,
    seed: int = 0,
    device: torch.device | str = "cpu",
    callback=None,
) -> BundleFlow:
    """Stage 1: rectified-flow training on ``s0 ~ U[0,1]^m`` (module doc)."""
    if steps < 0 or batch < 1 or not (lr > 0 and math.isfinite(lr)):
        raise InputError("train_flow: steps >= 0, batch >= 1 and a positive finite lr are required")
    torch.manual_seed(seed)
    flow = BundleFlow(n_items, hidden, n_quad).to(device)
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed + 1)
    for step in range(steps):
        s0 = torch.rand(batch, n_items, generator=g).to(device)
        t = torch.rand(batch, generator=g).to(device)
        loss = flow.rf_loss(s0, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if callback is not None:
            callback(step, float(loss.detach()))
    return flow


def save_flow(path, flow: BundleFlow, diagnostics: dict | None = None) -> None:
    from bundleflow.utils.files import atomic_write

    payload = {"meta": flow.meta(), "state": flow.state_dict(), "diagnostics": diagnostics or {}}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_flow(path, device="cpu") -> BundleFlow:
    from bundleflow.utils.files import load_tensors

    payload = load_tensors(path, device, "flow checkpoint")
    if not isinstance(payload, dict) or not isinstance(payload.get("meta"), dict) or "state" not in payload:
        raise InputError(f"{path}: not a bundleflow flow checkpoint (needs 'meta' and 'state')")
    meta = payload["meta"]
    if meta.get("domain") != DOMAIN:
        raise InputError(f"{path}: flow trained on domain {meta.get('domain')!r}, Stage 2 samples {DOMAIN!r}")
    try:
        flow = BundleFlow(meta["n_items"], meta["hidden"], meta["n_quad"], meta["q_max"])
        flow.load_state_dict(payload["state"])
    except Exception as exc:
        raise InputError(f"{path}: flow checkpoint does not match its own metadata ({type(exc).__name__})") from exc
    return flow.to(device)

"""Stage 2 throughput and scale (issue: one iteration at J=5000, m=50 under 0.1 s on 2 cores).

    python benchmarks/bench_stage2.py iteration [--device auto]   # time split + kernel ratio
    python benchmarks/bench_stage2.py scale [--device auto]       # m in {50,150,500}, J in {1000,5000,20000}
    python benchmarks/bench_stage2.py reseed [--device auto]      # re-seeding vs a train step, same process

``iteration``: m=50, J=5000, D=8, batch 128, 6 and 20 XOR atoms. One Stage 2 iteration is
split into flow (support points pushed and rounded, log-densities), valuation (distinct
bundles valued by every bidder), relaxation (expected values, softmax with the null
option, revenue) and backward + optimiser step; the valuation is timed with each
containment kernel in the same run -- subset tables (the CPU default), bit-packed
64-bit words (``T & ~S == 0``) and the float matmul -- and their ratios reported.
The trainer's own ``train_step`` is timed too, as users get it and, in a subprocess,
with the glibc allocator left untuned (``BUNDLEFLOW_TUNE_MALLOC=0``). ``scale``: each (m, J) runs in a fresh
subprocess that reports its median iteration time and peak memory (RSS on CPU, allocated
memory on CUDA). Results are printed as JSON lines and written to runs/bench/stage2_*.json
(scale also as a markdown table and a plot). ``reseed``: one re-seeding
(:meth:`MenuTrainer.reseed`, 4,000 sampled bidders, up to 256 elements moved) at m=50, J=5000,
D=8 from random supports, against the median ``train_step`` in the same process, and what it
adds per step at ``menu.reseed_every=100``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from bundleflow.experiments.config import load_config
from bundleflow.flow.model import BundleFlow
from bundleflow.training.trainer import MenuTrainer
from bundleflow.utils.device import resolve_device, tune_cpu_allocator
from bundleflow.valuations.bundles import unique_rows
from bundleflow.valuations.generators import uniform_atoms

OUT = Path("runs/bench")


def _setup(m: int, J: int, D: int, batch: int, K: int, dev: torch.device) -> MenuTrainer:
    q = min(0.46, 12.0 / m)  # atoms of ~12 items (CATS-like) at large m
    data = uniform_atoms(max(batch, 256), m, K, q, seed=0)
    cfg = load_config(
        None, [f"menu.n_elements={J}", f"menu.n_support={D}", f"menu.batch={batch}", "menu.init_price_rounds=0"]
    )
    torch.manual_seed(0)
    t = MenuTrainer(BundleFlow(m, hidden=128), data, data.subset(torch.arange(64)), cfg.menu, dev)
    with torch.no_grad():  # random support points: many distinct bundles (the expensive case)
        t.params.z.normal_(0, 2)
        t.params.price_logit.normal_()
    return t


def _sync_fn(dev: torch.device):
    """Waits for queued device work before a clock is read (a no-op on CPU)."""
    return torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)


def _split(t: MenuTrainer, method: str, sync) -> dict:
    """Seconds of each part of one iteration (mirrors MenuTrainer.soft_revenue + train_step)."""
    batch = t.train.subset(torch.randint(len(t.train), (t.cfg.batch,), generator=t.gen).to(t.train.device))
    B = len(batch)
    out = {}
    sync()
    t0 = time.perf_counter()
    bundles, probs = t.params.lottery()
    J, D, m = bundles.shape
    sync()
    out["flow"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    uniq, inv = unique_rows(bundles.reshape(J * D, m))
    V = batch.bundle_values(uniq > 0.5, unit=t.scale, dtype=torch.float32, method=method)  # [U, B]
    sync()
    out["valuation"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev = torch.bmm(probs[:, None, :], V.index_select(0, inv).view(J, D, B))[:, 0].T
    price = t.params.prices() / t.scale
    logits = torch.cat([ev - price[None], torch.zeros(B, 1, device=ev.device)], 1) / 0.01
    rev = (torch.softmax(logits, 1)[:, :J] * price[None]).sum(1).mean()
    sync()
    out["relaxation"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    t.opt.zero_grad(set_to_none=True)
    (-rev).backward()
    t.opt.step()
    sync()
    out["backward"] = time.perf_counter() - t0
    out["distinct_bundles"] = int(uniq.shape[0])
    return out


def _median(rows: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def _train_step_seconds(t: MenuTrainer, sync, repeats: int) -> float:
    t.train_step()
    t.train_step()
    sync()  # warm-up (allocator, first touches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        t.train_step()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


KERNELS = ("table", "bitpack", "matmul")


def iteration(dev: torch.device, repeats: int = 7) -> list[dict]:
    """Time split per containment kernel, kernel ratios, and the trainer's own ``train_step``.

    ``train_step_s`` runs as users get it (glibc allocator tuned by the trainer on CPU);
    ``train_step_untuned_s`` repeats it in a subprocess with ``BUNDLEFLOW_TUNE_MALLOC=0``.
    """
    sync = _sync_fn(dev)
    untuned = {}
    # first, while this process is idle (its busy-waiting OpenMP threads would slow a child down)
    for K in (6, 20) if dev.type == "cpu" else ():
        env = dict(os.environ, BUNDLEFLOW_TUNE_MALLOC="0")
        r = subprocess.run(
            [sys.executable, __file__, "_step", str(K), "--device", "cpu"], capture_output=True, text=True, env=env
        )
        untuned[K] = json.loads(r.stdout.strip().splitlines()[-1])["train_step_s"] if r.returncode == 0 else None
    results = []
    for K in (6, 20):
        t = _setup(50, 5000, 8, 128, K, dev)
        row = {
            "device": str(dev),
            "threads": torch.get_num_threads(),
            "m": 50,
            "J": 5000,
            "D": 8,
            "batch": 128,
            "atoms": K,
        }
        for method in KERNELS:
            _split(t, method, sync)  # warm-up
            parts = _median([_split(t, method, sync) for _ in range(repeats)])
            row[method] = {k: (round(v, 5) if k != "distinct_bundles" else int(v)) for k, v in parts.items()}
            row[method]["total"] = round(sum(v for k, v in parts.items() if k != "distinct_bundles"), 5)
        row["valuation_matmul_over_bitpack"] = round(row["matmul"]["valuation"] / row["bitpack"]["valuation"], 3)
        row["valuation_bitpack_over_table"] = round(row["bitpack"]["valuation"] / row["table"]["valuation"], 3)
        row["valuation_matmul_over_table"] = round(row["matmul"]["valuation"] / row["table"]["valuation"], 3)
        row["train_step_s"] = round(_train_step_seconds(t, sync, repeats), 5)
        if dev.type == "cpu":
            row["train_step_untuned_s"] = untuned[K]
        row["target_met"] = row["train_step_s"] < 0.1
        print(json.dumps(row), flush=True)
        results.append(row)
    return results


def _one_scale_point(m: int, J: int, dev: torch.device) -> dict:
    sync = _sync_fn(dev)
    t = _setup(m, J, 8, 128, 6, dev)
    step_s = _train_step_seconds(t, sync, 5)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if dev.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {"m": m, "J": J, "iteration_s": round(step_s, 4), "peak_mib": round(peak, 1), "device": str(dev)}


def scale(dev_name: str) -> list[dict]:
    rows = []
    for m in (50, 150, 500):
        for J in (1000, 5000, 20000):
            cmd = [sys.executable, __file__, "_point", str(m), str(J), "--device", dev_name]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                row = {
                    "m": m,
                    "J": J,
                    "error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}",
                }
            else:
                row = json.loads(r.stdout.strip().splitlines()[-1])
            print(json.dumps(row), flush=True)
            rows.append(row)
    lines = ["| m | J | iteration s | peak MiB |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['m']} | {r['J']} | {r.get('iteration_s', 'error')} | {r.get('peak_mib', '')} |" for r in rows]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "stage2_scale.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for m in (50, 150, 500):
        pts = [r for r in rows if r["m"] == m and "iteration_s" in r]
        ax[0].plot([r["J"] for r in pts], [r["iteration_s"] for r in pts], marker="o", label=f"m={m}")
        ax[1].plot([r["J"] for r in pts], [r["peak_mib"] for r in pts], marker="o", label=f"m={m}")
    for a, yl in zip(ax, ("seconds per Stage 2 iteration", "peak memory (MiB)")):
        a.set_xscale("log")
        a.set_xlabel("menu size J")
        a.set_ylabel(yl)
        a.legend()
    fig.tight_layout()
    fig.savefig(OUT / "stage2_scale.png", dpi=110)
    return rows


def reseed(dev: torch.device, repeats: int = 3) -> list[dict]:
    """Seconds of one :meth:`MenuTrainer.reseed` against one ``train_step``, in the same process."""
    sync = _sync_fn(dev)
    data = uniform_atoms(4000, 50, 20, 0.46, seed=0)
    cfg = load_config(None, ["menu.n_elements=5000", "menu.n_support=8", "menu.batch=128", "menu.reseed_every=100"])
    torch.manual_seed(0)
    t = MenuTrainer(BundleFlow(50, hidden=128), data, data.subset(torch.arange(64)), cfg.menu, dev)
    with torch.no_grad():  # the paper's random start, prices such that many elements go unused
        t.params.z.uniform_(-2.9, 2.9)
        t.params.price_logit.fill_(2.0)
    step = _train_step_seconds(t, sync, 7)
    times, moved = [], []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        report = t.reseed()
        sync()
        times.append(time.perf_counter() - t0)
        moved.append(len(report["moved"]))
    sec = statistics.median(times)
    row = {
        "train_step_s": round(step, 5),
        "reseed_s": round(sec, 4),
        "reseed_over_step": round(sec / step, 2),
        "added_per_step_at_every_100": round(sec / 100 / step, 4),
        "moved": moved,
    }
    print(json.dumps(row))
    return [row]


def main() -> None:
    ap = argparse.ArgumentParser(description="Stage 2 throughput and scale")
    ap.add_argument("mode", choices=["iteration", "scale", "reseed", "_point", "_step"])
    ap.add_argument("args", nargs="*")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    tune_cpu_allocator()  # as the trainer does (no-op with BUNDLEFLOW_TUNE_MALLOC=0)
    dev = resolve_device(a.device)
    if a.mode == "_step":  # one train_step timing in a fresh process (e.g. allocator untuned)
        sync = _sync_fn(dev)
        print(
            json.dumps(
                {"train_step_s": round(_train_step_seconds(_setup(50, 5000, 8, 128, int(a.args[0]), dev), sync, 7), 5)}
            )
        )
        return
    if a.mode == "_point":
        print(json.dumps(_one_scale_point(int(a.args[0]), int(a.args[1]), dev)))
        return
    rows = iteration(dev) if a.mode == "iteration" else reseed(dev) if a.mode == "reseed" else scale(a.device)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"stage2_{a.mode}_{dev.type}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

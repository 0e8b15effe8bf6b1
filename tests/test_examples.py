"""Every script in examples/ runs as a user would run it, and prints the right numbers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bundleflow.valuations import Valuation, additive_uniform, uniform_atoms, unit_demand_uniform

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# under pytest -n N every worker has one core: a script it starts uses one torch thread too
# (two threads each on two busy cores made these scripts 2-3 times slower)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"} if os.environ.get("PYTEST_XDIST_WORKER") else None


def run(script: str) -> str:
    res = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=300, env=ENV)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+\.\d+", line)]


def test_every_example_is_listed_and_tested():
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    index = (EXAMPLES / "README.md").read_text()
    assert scripts == ["01_custom_valuation.py", "02_evaluate_menu.py", "03_lp_optimum.py", "04_gemnet.py"]
    assert all(f"`{s}`" in index for s in scripts)


def test_custom_valuation_beats_grand_bundling():
    out = run("01_custom_valuation.py").splitlines()
    learned, se = numbers(out[0])
    grand = numbers(out[1])[0]
    # the start contains the grand bundle at its best in-sample price; held out, within noise or above
    assert learned > grand - 2 * se
    assert 0.5 < grand < 2.0  # budgets in [1, 2] cap every bidder's value


def test_hand_written_menu_earns_manelli_vincent():
    revenue, se, _, null = numbers(run("02_evaluate_menu.py"))  # third: the printed optimum
    assert revenue == pytest.approx(0.5491, abs=4 * se + 1e-4)
    # nobody buys iff v1, v2 < 2/3 and v1 + v2 < (4 - sqrt 2) / 3: area (2/3)^2 - (4/3 - (4 - sqrt 2)/3)^2 / 2 = 1/3
    assert null == pytest.approx(1 / 3, abs=0.005)


def test_lp_example_menu_earns_the_lp_value():
    lp, menu = numbers(run("03_lp_optimum.py").splitlines()[0])
    # types (1,1), (1,2), (2,1), (2,2) w.p. 1/4: the grand bundle at 3 sells to 3 of 4 types: 9/4, optimal here
    assert lp == pytest.approx(2.25, abs=1e-6) and menu == pytest.approx(lp, abs=1e-6)


def test_gemnet_example_learns_myerson_and_the_lp_tells_dsic_from_bic():
    """Slow: a subprocess trains GemNet and solves the multi-bidder LPs (~15 s)."""
    out = [numbers(line) for line in run("04_gemnet.py").splitlines()]
    (learned, se, over), (after, _, over_after), (certified,), (myerson, optimum), (dsic, bic) = out
    # two bidders, one item, U[0,1]: the optimum is Myerson's 5/12; GemNet within 5% of it, and
    # above it by no more than noise and the little it over-allocates
    assert optimum == pytest.approx(5 / 12, abs=1e-4) and myerson == pytest.approx(5 / 12, abs=3 * se)
    assert 0.95 * 5 / 12 < learned < 5 / 12 + 3 * se + over / 100
    # the transform repairs the grid's profiles at a small cost; off the grid it over-allocates
    # on under 1% of the profiles, and the certificate covers nearly all of [0,1]^2
    assert after > learned - 0.01 and over_after < 1.0 and certified > 99.0
    assert dsic == pytest.approx(25 / 8, abs=1e-4) and bic == pytest.approx(51 / 16, abs=1e-4)


@pytest.mark.parametrize(
    "make",
    [
        lambda: additive_uniform(200, 4, seed=1),
        lambda: unit_demand_uniform(200, 4, seed=2),
        lambda: uniform_atoms(200, 5, 3, 0.5, seed=3),
    ],
)
def test_default_demand_and_grand_value_agree_with_each_class(make):
    """The defaults a user subclass inherits (enumerating every bundle) equal the built-in oracles."""
    v = make()
    prices = torch.rand(9, v.n_items, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.8
    prices[0] = 0.25  # ties: several bundles of equal utility
    u_own, pay_own = v.demand(prices)
    u_def, pay_def = Valuation.demand(v, prices)
    assert torch.allclose(u_own, u_def, atol=1e-12) and torch.allclose(pay_own, pay_def, atol=1e-12)
    # the same sum in another order (a matmul against the grand bundle): equal to rounding only,
    # which depends on the CPU's BLAS kernel
    assert torch.allclose(Valuation.grand_value(v), v.grand_value(), rtol=0, atol=1e-12)


def test_default_demand_refuses_many_items():
    from bundleflow.errors import InputError

    v = additive_uniform(3, 13, seed=0)
    with pytest.raises(InputError, match="override Valuation.demand"):
        Valuation.demand(v, torch.zeros(13))


def test_readme_python_block_runs():
    """The README's "From Python" snippet runs as printed and prints two exact revenues.

    Slow: a subprocess trains the README example end to end (~20 s).
    """
    readme = (EXAMPLES.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) == 1
    res = subprocess.run([sys.executable, "-c", blocks[0]], capture_output=True, text=True, timeout=300, env=ENV)
    assert res.returncode == 0, res.stderr[-2000:]
    learned, grand = (float(x) for x in res.stdout.split())
    assert 0.3 < grand < 1.0 and learned > grand - 0.03  # uniform atoms m=10: grand bundling about 0.58

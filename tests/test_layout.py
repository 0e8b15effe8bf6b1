"""The package's layout: layers import only downward, no import circles (function-level imports
included), every module imports on its own, and the public API resolves."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "bundleflow"

# lowest first; a module may import from its own layer and the layers before it
LAYERS = [
    "errors",
    "utils",
    "valuations",
    "cats",
    "flow",
    "mechanisms",
    "oracles",
    "baselines",
    "training",
    "experiments",
    "cli",
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(module_name(p) for p in PKG.rglob("*.py"))


def imports_of(name: str) -> set[str]:
    """Every ``bundleflow`` module ``name`` imports, at any depth of its code (functions,
    ``TYPE_CHECKING`` blocks), resolved to modules that exist."""
    path = PKG.parent / (name.replace(".", "/") + ".py")
    if not path.is_file():
        path = PKG.parent / name.replace(".", "/") / "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in MODULES)
    out.discard(name)
    return out


GRAPH = {m: imports_of(m) for m in MODULES if m != "bundleflow"}  # the facade imports lazily


def layer(name: str) -> str:
    return name.split(".")[1]


def test_every_module_is_in_a_layer():
    assert {layer(m) for m in GRAPH} <= set(LAYERS)


def test_layers_import_only_downward():
    bad = [
        f"{m} -> {t}"
        for m, ts in GRAPH.items()
        for t in ts
        if t != "bundleflow" and LAYERS.index(layer(t)) > LAYERS.index(layer(m))
    ]
    assert not bad, bad


def test_nothing_imports_the_facade():
    """``import bundleflow`` is the users' entry point; modules import from where names live."""
    assert not [m for m, ts in GRAPH.items() if "bundleflow" in ts]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for t in sorted(graph.get(n, ())):
            if state.get(t) == 1:
                return stack[stack.index(t) :] + [t]
            if t not in state and (c := visit(t)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_no_import_cycles_between_modules():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH) or [])


def test_no_import_cycles_between_layers():
    layers: dict[str, set[str]] = {}
    for m, ts in GRAPH.items():
        layers.setdefault(layer(m), set()).update(layer(t) for t in ts if t != "bundleflow" and layer(t) != layer(m))
    assert find_cycle(layers) is None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


ISOLATED = r"""
import multiprocessing as mp, sys, importlib
import torch, numpy, scipy.optimize, scipy.sparse, pydantic, yaml, typer, rich.console  # third-party, shared
assert not [m for m in sys.modules if m.split('.')[0] == 'bundleflow']
def load(name):
    importlib.import_module(name)
ctx = mp.get_context('fork')
failed = []
for name in sys.argv[1:]:
    p = ctx.Process(target=load, args=(name,))
    p.start(); p.join()
    if p.exitcode != 0:
        failed.append(name)
print('FAILED', *failed)
sys.exit(1 if failed else 0)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="forks one child per module")
def test_every_module_imports_on_its_own():
    """Each module imported first in a fresh interpreter (a forked child that has only the
    third-party libraries loaded): a cycle hidden by import order would fail here."""
    res = subprocess.run([sys.executable, "-c", ISOLATED, *MODULES], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]


def test_public_api_resolves():
    import bundleflow

    for name in bundleflow.__all__:
        assert getattr(bundleflow, name) is not None, name
    assert set(bundleflow.__all__) <= set(dir(bundleflow))
    with pytest.raises(AttributeError):
        bundleflow.not_a_name  # noqa: B018


@pytest.mark.parametrize(
    "package", sorted(m for m in MODULES if (PKG.parent / m.replace(".", "/") / "__init__.py").is_file())
)
def test_every_package_all_resolves(package):
    mod = importlib.import_module(package)
    names = getattr(mod, "__all__", None)
    assert names is not None, f"{package} has no __all__"
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(mod, name), f"{package}.__all__ lists {name!r}, which it does not define"


def test_version_has_one_source():
    import tomllib

    import bundleflow

    project = tomllib.loads((PKG.parent / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "bundleflow.__version__"}
    assert bundleflow.__version__.count(".") == 2

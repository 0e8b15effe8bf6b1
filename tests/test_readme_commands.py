"""Issue 12, point 6: every command of the README's command-line block runs as written.

Each command runs in-process from a scratch folder laid out like a checkout (``main/`` beside
``shared/cats``), shortened only by options appended at the end (fewer steps, rows or
seconds), which override the README's. Commands that read another command's output (a path
under ``runs/`` that an earlier command wrote) form one chain, run in the README's order in
one folder; independent chains are separate tests, so ``pytest -n 2`` runs them side by side.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import cli

README = Path(__file__).resolve().parents[1] / "README.md"

# appended to the command that starts with the key: same command, less work
SHORTER = {
    "demo": [],
    "baselines": ["--limit", "400"],
    "train-flow": ["--steps", "30", "--hidden", "16"],
    "train": [
        "flow.steps=20",
        "flow.hidden=16",
        "menu.steps=4",
        "menu.log_every=2",
        "menu.n_elements=8",
        "menu.batch=128",
    ],
    "evaluate": ["--limit", "500"],
    "certify": ["--boxes", "2000"],
    "report": [],
    "bench": ["--quick", "--budget", "2"],
    "data generate": ["--n", "40"],
    "data stats": ["--limit", "200"],
    # the exact families and tariffs on 600 rows (the BundleFlow families' Stage 1 flow is a minute)
    "design": ["--limit", "600", "--budget", "5", "--families", "grand_bundling,item_pricing,atom_menu,tariffs"],
}
# a train command on generated bidders (rochetnet on 20,000, the default 4,000 elsewhere):
# keep the command, shrink the sample (item pricing's exact ascent on 4,000 bidders x 50 items
# took 44 s of the run's 45)
SAMPLE = ["data.n_train=1000", "data.n_test=500", "data.n_val=200"]
# the multi preset over all ten settings: one item setting and one CATS setting (2 bidders)
# take the same code paths (item auctions, CATS drawing, XOR winner determination); 465 s -> 24 s
MULTI_SETTINGS = ["--settings", "multi_additive_2x2,multi_cats_regions_2x50"]


def readme_commands() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"## Command line\s+```bash\n(.*?)```", text, re.S)
    assert block, "README has no command-line block"
    cmds = []
    for line in block.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words = shlex.split(line)
            assert words[0] == "bundleflow", line
            cmds.append(words[1:])
    return cmds


def _runs_paths(words: list[str]) -> set[str]:
    """The run folders or files under ``runs/`` a command names (``runs/u50/menu.json`` -> ``runs/u50``)."""
    found = set()
    for w in words:
        value = w.split("=", 1)[1] if "=" in w else w
        if value.startswith("runs/"):
            found.add("/".join(value.split("/")[:2]))
    return found


def command_chains(cmds: list[list[str]]) -> list[list[list[str]]]:
    """Split the commands into chains: two commands share a chain when they name the same
    path under ``runs/`` (one writes it, the other reads it); order within a chain is the README's."""
    chains: list[tuple[set[str], list[list[str]]]] = []
    for words in cmds:
        paths = _runs_paths(words)
        joined = [c for c in chains if paths & c[0]]
        merged: tuple[set[str], list[list[str]]] = (set(paths), [])
        for c in joined:
            merged[0].update(c[0])
            merged[1].extend(c[1])
            chains.remove(c)
        merged[1].append(words)
        merged[1].sort(key=cmds.index)
        chains.append(merged)
    chains.sort(key=lambda c: cmds.index(c[1][0]))
    return [c[1] for c in chains]


def _extra(words: list[str]) -> list[str]:
    key = " ".join(words[:2]) if words[0] == "data" else words[0]
    if words == ["bench", "--list"]:
        return []
    extra = list(SHORTER[key])
    if key == "train" and "data.kind=file" not in words:
        extra += SAMPLE
    if key == "bench" and "--preset" in words and words[words.index("--preset") + 1] == "multi":
        extra += MULTI_SETTINGS
    if key == "train" and "menu.model=gemnet" in words:  # no Stage 1 flow; a small transform grid (SAMPLE's sizes)
        extra = [e for e in extra if not e.startswith("flow.")] + ["gemnet.grid_levels=3"]
    return extra


CHAINS = command_chains(readme_commands())


def test_the_chains_hold_every_command_once_and_join_readers_to_writers():
    cmds = readme_commands()
    assert {c[0] for c in cmds} >= {"demo", "baselines", "train-flow", "train", "evaluate", "report", "bench", "data"}
    assert sorted(map(tuple, sum(CHAINS, []))) == sorted(map(tuple, cmds))
    by_first = {" ".join(c[0][:2]): c for c in CHAINS}
    u50 = next(c for c in CHAINS if any("runs/u50" in w for cmd in c for w in cmd))
    # the flow file, the run that loads it, then the commands reading the run: in README order
    assert [c[0] for c in u50] == ["train-flow", "train", "evaluate", "report"]
    assert [c[0] for c in by_first["data generate"]] == ["data", "data"]
    # a hand-made case: c reads a's output, b is independent
    a, b, c = ["train", "--out", "runs/x"], ["bench", "--out", "runs/y"], ["report", "runs/x/sub"]
    assert command_chains([a, b, c]) == [[a, c], [b]]


def _chain_id(chain: list[list[str]]) -> str:
    paths = sorted(set().union(*map(_runs_paths, chain)))
    return " ".join([chain[0][0], *paths] if paths else chain[0][:2])


@pytest.mark.parametrize("chain", CHAINS, ids=map(_chain_id, CHAINS))
def test_readme_command_block_runs_as_written(chain, tmp_path, monkeypatch, cats_dir):
    """Slow: each chain is real CLI runs (training, benches, CATS drawing); the longest, bench runs/bench, ~40 s."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "cats").symlink_to(cats_dir, target_is_directory=True)
    work = tmp_path / "main"
    work.mkdir()
    monkeypatch.chdir(work)
    for words in chain:
        res = cli(*words, *_extra(words))
        assert res.exit_code == 0, (words, res.output, res.exception)
        if words[0] == "train":  # every run folder it wrote is complete
            assert (work / words[words.index("--out") + 1] / "summary.json").is_file(), words
        if words[0] == "report":
            assert (work / words[1] / "report" / "index.html").is_file(), words

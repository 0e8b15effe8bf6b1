"""Issue 12, point 6: every command of the README's command-line block runs as written.

Each command runs in-process from a scratch folder laid out like a checkout (``main/`` beside
``shared/cats``), in the README's order (later commands use earlier outputs), shortened only
by options appended at the end (fewer steps, rows or seconds), which override the README's.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

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
}
# rochetnet on 20,000 additive bidders: keep the command, shrink the sample
SAMPLE = ["data.n_train=2000", "data.n_test=500", "data.n_val=200"]


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


def _extra(words: list[str]) -> list[str]:
    key = " ".join(words[:2]) if words[0] == "data" else words[0]
    if words == ["bench", "--list"]:
        return []
    extra = list(SHORTER[key])
    if key == "train" and "data.n_train=20000" in words:
        extra += SAMPLE
    if key == "train" and "menu.model=gemnet" in words:  # no Stage 1 flow; a small transform grid
        extra = [e for e in extra if not e.startswith("flow.")] + ["gemnet.grid_levels=3", "data.n_test=500"]
    return extra


def test_readme_command_block_runs_as_written(tmp_path, monkeypatch, cats_dir):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "cats").symlink_to(cats_dir, target_is_directory=True)
    work = tmp_path / "main"
    work.mkdir()
    monkeypatch.chdir(work)
    cmds = readme_commands()
    assert {c[0] for c in cmds} >= {"demo", "baselines", "train-flow", "train", "evaluate", "report", "bench", "data"}
    for words in cmds:
        res = cli(*words, *_extra(words))
        assert res.exit_code == 0, (words, res.output, res.exception)
    assert (work / "runs" / "regions" / "summary.json").is_file()
    assert (work / "runs" / "u50" / "report" / "index.html").is_file()

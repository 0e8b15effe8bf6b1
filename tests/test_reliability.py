"""Issue 36 (reliability, second round): the cases of its acceptance table handled so far.

Each case: the exit code 2, the one line naming the file or field, and nothing written."""

from __future__ import annotations

import pytest
from conftest import assert_one_line_error, cli

from bundleflow.errors import InputError
from bundleflow.experiments.config import load_config
from bundleflow.utils.yaml_files import MAX_YAML_BYTES, load_yaml, read_yaml


def _refused(tmp_path, args, *fragments):
    out = tmp_path / "run"
    assert_one_line_error(cli("train", "--out", out, *args), *fragments)
    assert not out.exists()  # refused before any work: no run folder


def test_a_key_given_twice_is_an_error_naming_the_file_and_key(tmp_path):
    cfg = tmp_path / "dup.yaml"
    cfg.write_text("menu:\n  steps: 3\n  steps: 4\n")
    _refused(tmp_path, ["-c", cfg], str(cfg), "key 'steps' is given twice", "line 3")
    with pytest.raises(InputError, match="key 'a' is given twice"):
        load_yaml("a: 1\nb: 2\na: 3\n", "x")
    assert load_yaml("a: 1\nb: {a: 2}\n", "x") == {"a": 1, "b": {"a": 2}}  # the same key in another mapping


def test_yaml_aliases_are_refused_so_no_small_file_expands(tmp_path):
    """Billion laughs: nine levels of nine aliases would be 9^9 = 387 million list items."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]
    cfg = tmp_path / "laughs.yaml"
    cfg.write_text("\n".join(lines) + "\n")
    assert cfg.stat().st_size < 1000
    _refused(tmp_path, ["-c", cfg], str(cfg), "aliases (*name) are not allowed")
    # the same in one override
    _refused(tmp_path, ["menu.steps=[&a [1, 1], *a]"], "override menu.steps", "aliases")
    assert load_yaml("a: &x 1\n", "x") == {"a": 1}  # an anchor alone is harmless


def test_a_config_that_is_not_utf8_or_too_large_is_refused(tmp_path):
    utf16 = tmp_path / "u16.yaml"
    utf16.write_bytes("menu:\n  steps: 3\n".encode("utf-16"))
    _refused(tmp_path, ["-c", utf16], str(utf16), "not UTF-8 text")
    big = tmp_path / "big.yaml"
    big.write_text("#" * (MAX_YAML_BYTES + 1) + "\n")
    _refused(tmp_path, ["-c", big], str(big), "more than a YAML file here may hold")
    with pytest.raises(InputError, match="more than a YAML file"):
        read_yaml(big)


def test_booleans_are_not_numbers(tmp_path):
    cfg = tmp_path / "b.yaml"
    cfg.write_text("menu:\n  n_elements: true\n")
    _refused(tmp_path, ["-c", cfg], "menu.n_elements: must be a number, got the boolean true")
    _refused(tmp_path, ["menu.lr=false"], "menu.lr: must be a number, got the boolean false")
    # a boolean field still takes booleans, a number field numbers
    cfg = load_config(overrides=["menu.model=gemnet", "gemnet.affine=true", "menu.n_elements=7"])
    assert cfg.gemnet.affine is True and cfg.menu.n_elements == 7
    assert load_config(overrides=["menu.lr=0.5"]).menu.lr == 0.5


def test_command_help_is_printed_as_written():
    """Terminal markup ate "[0,1]" from certify's help ("never over-allocates on ^(n m)")."""
    r = cli("--help")
    assert r.exit_code == 0
    assert "over-allocates on [low," in r.stdout
    assert "over-allocates on [low, high]^(n m)" in cli("certify", "--help").stdout


def _npz(path, atoms, values):
    import numpy as np

    np.savez(path, atoms=atoms, values=values, n_atoms=np.full(atoms.shape[0], atoms.shape[1]))
    return path


def test_valuation_files_that_are_not_regular_files_say_what_they_are(tmp_path):
    assert_one_line_error(cli("baselines", "/dev/zero"), "/dev/zero: is not a regular file (a device or pipe)")
    assert_one_line_error(cli("baselines", tmp_path), f"{tmp_path}: is a folder, not a valuation file")
    assert_one_line_error(cli("baselines", tmp_path / "none.npz"), "none.npz: no such file")


def test_complex_values_and_rows_without_atoms_are_refused(tmp_path):
    import numpy as np

    c = _npz(tmp_path / "c.npz", np.ones((3, 2, 4), dtype=bool), (np.ones((3, 2)) + 1j).astype(np.complex64))
    assert_one_line_error(cli("baselines", c), "c.npz: 'values' must hold real numbers, got dtype complex64")
    z = _npz(tmp_path / "z.npz", np.ones((3, 0, 4), dtype=bool), np.ones((3, 0)))
    assert_one_line_error(cli("baselines", z), "z.npz: 'atoms' has shape (3, 0, 4): every bidder needs at least one")


def test_a_partial_instance_is_refused_before_drawing(tmp_path):
    out = tmp_path / "p.npz"
    r = cli("data", "generate", "regions", "--items", "5", "--n", "403", "--bidders-per-instance", "4", "--out", out)
    assert_one_line_error(r, "--n 403 is not a multiple of --bidders-per-instance 4", "use --n 400 or 404")
    assert not out.exists()


def test_links_inside_a_run_folder_are_replaced_never_followed(tmp_path):
    """Data loss before: a run folder whose ``report`` was a link to a folder elsewhere had that
    folder's ``index.html`` overwritten. Links planted for every file and folder a run writes
    leave their targets byte for byte unchanged."""
    import hashlib

    from conftest import TINY_TRAIN

    outside = tmp_path / "outside"
    outside.mkdir()
    names = ["index.html", "metrics.jsonl", "menu.json", "summary.json"]
    for n in names:
        (outside / n).write_text(f"precious {n}\n")

    def digest():
        return {n: hashlib.sha256((outside / n).read_bytes()).hexdigest() for n in names}

    before = digest()
    run = tmp_path / "run"
    run.mkdir()
    (run / "report").symlink_to(outside, target_is_directory=True)
    for n in names[1:]:
        (run / n).symlink_to(outside / n)
    r = cli("train", "--out", run, *TINY_TRAIN)
    assert r.exit_code == 0, r.output
    assert cli("report", run).exit_code == 0
    assert digest() == before
    assert (run / "report").is_dir() and not (run / "report").is_symlink()
    assert (run / "report" / "index.html").is_file()
    assert not any((run / n).is_symlink() for n in names[1:])
    assert len((run / "metrics.jsonl").read_text().splitlines()) >= 2  # its own log, from the start
    # a design run's family folder and log
    from bundleflow.cats.io import save_cats_npz
    from bundleflow.valuations.generators import uniform_atoms

    data = save_cats_npz(tmp_path / "toy.npz", uniform_atoms(200, 3, 2, 0.5, seed=0))
    d = tmp_path / "design"
    d.mkdir()
    (d / "item_pricing").symlink_to(outside, target_is_directory=True)
    (d / "metrics.jsonl").symlink_to(outside / "metrics.jsonl")
    r = cli("design", data, "--out", d, "--families", "item_pricing", "--budget", "5")
    assert r.exit_code == 0, r.output
    assert digest() == before and not (outside / "fit.json").exists()
    assert (d / "item_pricing" / "fit.json").is_file() and not (d / "item_pricing").is_symlink()


def test_a_failed_start_never_blocks_the_corrected_command(tmp_path, monkeypatch):
    """``menu.n_support=1000000`` failed after Stage 1 with the allocator's message and left
    ``config.yaml``, so the corrected command on the same folder was refused. The failure is
    simulated (never provoked): Stage 2's start raises as an allocator would."""
    from conftest import TINY_TRAIN

    from bundleflow.experiments.runner import run_training
    from bundleflow.training.trainer import MenuTrainer

    def out_of_memory(self, progress=False):
        raise RuntimeError("simulated: DefaultCPUAllocator: not enough memory")

    run = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(MenuTrainer, "initialise", out_of_memory)
        with pytest.raises(RuntimeError, match="simulated"):
            run_training(load_config(overrides=[*TINY_TRAIN, "menu.n_support=3"]), run, progress=False, log=print)
    assert (run / "config.yaml").is_file() and not (run / "checkpoint.pt").exists()
    said: list[str] = []
    summary = run_training(load_config(overrides=TINY_TRAIN), run, progress=False, log=said.append)
    assert any("stopped before its first checkpoint; starting afresh" in s for s in said)
    assert summary["learned"]["steps_done"] == 4
    assert "n_support: 2" in (run / "config.yaml").read_text()
    # a run that reached a checkpoint is still protected from another config
    with pytest.raises(InputError, match="holds a run with a different config"):
        run_training(load_config(overrides=[*TINY_TRAIN, "menu.n_support=3"]), run, progress=False, log=said.append)


def test_unreadable_result_files_are_named(tmp_path):
    """``evaluate`` on a ``.pt`` holding a bare tensor, a 100,000-deep ``menu.json`` and ``report``
    with a corrupt ``summary.json``: each one line naming the file (before: "unexpected
    IndexError", "unexpected RecursionError", "a result file is not valid JSON")."""
    import torch
    from conftest import TINY_TRAIN

    data = tmp_path / "v.npz"
    from bundleflow.cats.io import save_cats_npz
    from bundleflow.valuations.generators import uniform_atoms

    save_cats_npz(data, uniform_atoms(50, 3, 2, 0.5, seed=0))
    bare = tmp_path / "bare.pt"
    torch.save(torch.ones(3), bare)
    assert_one_line_error(cli("evaluate", bare, data), f"{bare}: not a GemNet mechanism file (holds a Tensor")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert_one_line_error(cli("evaluate", deep, data), f"{deep}: nested too deeply to be a menu file")
    run = tmp_path / "run"
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 0
    (run / "summary.json").write_text("{bad")
    assert_one_line_error(cli("report", run), f"{run / 'summary.json'}: not valid JSON")
    (run / "summary.json").write_text("{}")
    (run / "menu.json").write_text('{"bundles": [[[1, 0, 0]]], "probs": [[1.0]]}')
    assert_one_line_error(cli("report", run), f"{run / 'menu.json'}: menu file lacks field 'prices'")


def test_absurd_sizes_are_refused_before_any_work(tmp_path, monkeypatch):
    """Counts beyond sane limits and tensors that cannot fit are refused at config time, naming
    the fields, the estimate and the limit (before: menu.n_elements=1e9 failed after 9 s of
    Stage 1; sweep --seeds 0-100000000 grew to 8.8 GB; certify --boxes 1e12 ran)."""
    import bundleflow.experiments.config as config_module

    _refused(tmp_path, ["menu.steps=100000000000"], "menu.steps: Input should be less than or equal to 10000000")
    _refused(
        tmp_path,
        ["menu.n_elements=1000000000"],
        "menu.n_elements=1000000000, menu.n_support=4, menu.batch=512",
        "relaxation [batch, J, D] x 4 needs about",
        "GB of memory available",
    )
    # the estimate by hand against a simulated 1 GB machine: 16 bytes x 512 x 128 x 4 = 4.2 MB fits;
    # 16 x 512 x 40,000 x 4 = 1.31 GB does not
    monkeypatch.setattr(config_module, "available_memory_bytes", lambda: 10**9)
    assert load_config(overrides=["menu.n_elements=128"]).menu.n_elements == 128
    with pytest.raises(InputError, match=r"relaxation \[batch, J, D\] x 4 needs about 1.31 GB, more than the 1 GB"):
        load_config(overrides=["menu.n_elements=40000"])
    # GemNet: 32 bytes x 512 x 5 bidders x 2,000 elements x 3 = 0.49 GB fits; 5,000 elements (1.23 GB) do not
    gem = ["menu.model=gemnet", "data.kind=additive", "data.n_bidders=5", "data.n_items=2", "gemnet.grid_levels=0"]
    assert load_config(overrides=[*gem, "menu.n_elements=2000"]).menu.n_elements == 2000
    with pytest.raises(InputError, match=r"GemNet menus \[batch, bidders, J, m \+ 1\] x 4 needs about 1.23 GB"):
        load_config(overrides=[*gem, "menu.n_elements=5000"])
    assert_one_line_error(
        cli("sweep", "--out", tmp_path / "sw", "--seeds", "0-100000000", "menu.steps=1"),
        "seeds: '0-100000000' gives more than 10000 seeds",
    )
    assert not (tmp_path / "sw").exists()


def test_certify_refuses_absurd_box_counts():
    from bundleflow.mechanisms.multi import GemNet
    from bundleflow.training.certificate import MAX_BOXES, certify

    with pytest.raises(InputError, match=f"--boxes {10**12} is more than {MAX_BOXES}"):
        certify(GemNet(2, 1, 2, cap=1.0), 0.0, 1.0, max_cells=10**12)


def test_an_npz_header_declaring_more_than_the_file_holds_is_refused_before_reading(tmp_path):
    """A 700-byte file whose 'values' header declares shape (1e10, 2, 2) (320 GB): refused from
    the header, naming the array (before: numpy tried to allocate and the generic
    out-of-memory line came back)."""
    import io
    import zipfile

    import numpy as np

    def npy(arr=None, header=None):
        buf = io.BytesIO()
        if header is None:
            np.lib.format.write_array(buf, arr)
        else:
            np.lib.format.write_array_header_1_0(buf, header)
            buf.write(b"\0" * 16)
        return buf.getvalue()

    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("values.npy", npy(header={"descr": "<f8", "fortran_order": False, "shape": (10**10, 2, 2)}))
        z.writestr("atoms.npy", npy(np.ones((2, 2, 2), dtype=bool)))
        z.writestr("n_atoms.npy", npy(np.array([2, 2])))
    assert path.stat().st_size < 1000
    assert_one_line_error(
        cli("baselines", path), f"{path}: array 'values' declares shape (10000000000, 2, 2) (320000000000 bytes)"
    )


def test_instance_grouping_is_never_ignored_silently(tmp_path):
    """GemNet with data.n_bidders=3 on a file drawn with 4 bidders per CATS instance used to
    regroup the rows in threes without a word."""
    from bundleflow.experiments.data import load_xor_instances

    data = tmp_path / "g4.npz"
    r = cli("data", "generate", "regions", "--items", "8", "--n", "16", "--bidders-per-instance", "4", "--out", data)
    assert r.exit_code == 0, r.output
    out = tmp_path / "run"
    args = ["menu.model=gemnet", "data.kind=file", f"data.path={data}", "data.n_bidders=3"]
    args += ["data.n_train=2", "data.n_val=1", "data.n_test=1", "menu.steps=1"]
    assert_one_line_error(
        cli("train", "--out", out, *args), f"{data}: its CATS instances have 4 bidders each, but data.n_bidders=3"
    )
    assert not (out / "config.yaml").exists()
    _, rows = load_xor_instances(data, 4)
    assert rows is not None and rows.shape == (4, 4)  # the matching count groups by instance


def test_a_folder_that_cannot_be_written_is_named_not_its_temporary_file(tmp_path, monkeypatch):
    """``report`` on a read-only folder named an internal temporary file. Simulated (the tests
    may run as root, who can write anywhere): creating the temporary file fails as in a
    read-only folder."""
    import tempfile

    from bundleflow.utils.files import atomic_write_text

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".index.html.abc.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(InputError) as err:
        atomic_write_text(tmp_path / "report" / "index.html", "x")
    assert str(err.value) == f"{tmp_path / 'report' / 'index.html'}: cannot write it (Permission denied)"
    assert ".tmp" not in str(err.value)


def test_long_user_text_is_shortened_in_the_one_line(tmp_path):
    """A 100 kB override was echoed whole; the line keeps its start (the field) and end."""
    from bundleflow.errors import MAX_MESSAGE

    r = cli("train", "--out", tmp_path / "run", "menu.model=" + "x" * 100_000)
    assert_one_line_error(r, "invalid config: menu.model: Input should be 'bundleflow'", "characters left out")
    assert len(r.stderr.strip()) <= len("error: ") + MAX_MESSAGE + 60
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_a_gemnet_transform_grid_too_large_for_its_milp_is_refused():
    """``gemnet.grid_levels=32`` at 2 bidders x 2 items was accepted and ran out of memory after
    112 s: 32^4 profiles x 2 bidders x 129 options is 270 million MILP choices."""
    base = ["menu.model=gemnet", "data.kind=additive", "data.n_bidders=2", "data.n_items=2"]
    with pytest.raises(InputError, match=r"32\^4 grid profiles x 2 bidders x 129 options = 270532608 MILP choices"):
        load_config(overrides=[*base, "gemnet.grid_levels=32"])
    assert load_config(overrides=[*base, "gemnet.grid_levels=8"]).gemnet.grid_levels == 8

"""The Colab set-up: dependency ranges that fit Colab, and the generated setup cell.

* Colab's published package freezes (tools/colab/pip-freeze*.txt) satisfy pyproject.toml's
  ranges for the packages that the setup cell must not upgrade.
* `mixer_ref_setup` detects the runtime, asks pip for jax with the runtime's extra while
  keeping Colab's numpy, pandas and torch, restarts the kernel once when pip replaced
  something already imported, installs nothing outside Colab, and says loudly when JAX fell
  back to the CPU on an accelerator runtime.
* Every chapter and exercise notebook (master and student copy) starts its first code cell
  with the setup head that tools/sync_repo_links.py writes.

tests/test_colab_emulation.py runs the setup cell in an emulated Colab (`make colab`).
"""

from __future__ import annotations

import re
import tomllib
from urllib.parse import unquote

import nbformat
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import mixer_ref_setup as colab_setup
from tools.sync_repo_links import (
    ROOT,
    notebooks,
    setup_head,
    setup_tail,
    sync_notebook,
    with_setup_head,
)

FREEZES = sorted((ROOT / "tools" / "colab").glob("pip-freeze*.txt"))
INSTALLED = colab_setup.installed  # before any test replaces it
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def ranges() -> dict[str, Requirement]:
    reqs = [*PYPROJECT["dependencies"], *PYPROJECT["optional-dependencies"]["torch"]]
    return {Requirement(r).name: Requirement(r) for r in reqs}


def frozen_versions(text: str) -> dict[str, str]:
    """{name: version} from `name==version` and from `name @ .../name-version-...whl` lines."""
    found = {}
    for line in text.splitlines():
        if match := re.fullmatch(r"([\w.-]+)==(\S+)", line.strip()):
            found[match[1].lower()] = match[2]
        elif match := re.fullmatch(r"([\w.-]+) @ \S+/([\w.]+)-([^-]+)-\S+\.whl", line.strip()):
            found[match[1].lower()] = unquote(match[3])
    return found


# --- dependency ranges ----------------------------------------------------------

def test_the_freezes_are_there():
    names = {p.name for p in FREEZES}
    assert names == {"pip-freeze.txt", "pip-freeze.gpu.txt", "pip-freeze.tpu.txt"}, names


@pytest.mark.parametrize("freeze", FREEZES, ids=lambda p: p.name)
def test_colab_preinstalled_packages_satisfy_the_ranges(freeze):
    frozen = frozen_versions(freeze.read_text())
    outside = []
    for name in ("numpy", "scikit-learn", "pillow", "torch"):
        assert name in frozen, f"{freeze.name} lists no {name}"
        version = Version(frozen[name])
        if not ranges()[name].specifier.contains(version, prereleases=True):
            outside.append(f"{name} {version} (range {ranges()[name].specifier})")
    assert not outside, (f"{freeze.name}: Colab's versions fall outside pyproject.toml's "
                         f"ranges, so the setup cell would upgrade them: {outside}")


def test_ranges_have_no_upper_bounds():
    capped = [str(r) for r in ranges().values() if any(s.operator in ("<", "<=", "==", "~=")
                                                       for s in r.specifier)]
    assert not capped, f"upper bounds need a known breakage, documented: {capped}"


def test_frozen_versions_reads_pins_and_wheel_urls():
    text = ("numpy==2.0.2\n"
            "torch @ https://download.pytorch.org/whl/cpu/torch-2.9.0%2Bcpu-cp312-cp312-"
            "manylinux_2_28_x86_64.whl\n")
    assert frozen_versions(text) == {"numpy": "2.0.2", "torch": "2.9.0+cpu"}


# --- mixer_ref_setup ---------------------------------------------------------------

@pytest.mark.parametrize("files, runtime", [
    (["accel0"], "tpu"), (["vfio/0"], "tpu"), (["nvidia0", "nvidiactl"], "gpu"),
    (["null", "vfio/vfio"], "cpu"), ([], "cpu"),
])
def test_detect_runtime_reads_the_device_files(tmp_path, monkeypatch, files, runtime):
    monkeypatch.delenv("MIXER_RUNTIME", raising=False)
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    assert colab_setup.detect_runtime(tmp_path) == runtime


def test_mixer_runtime_overrides_detection_and_is_checked(tmp_path, monkeypatch):
    (tmp_path / "accel0").touch()
    monkeypatch.setenv("MIXER_RUNTIME", "gpu")
    assert colab_setup.detect_runtime(tmp_path) == "gpu"
    monkeypatch.setenv("MIXER_RUNTIME", "TPU")
    with pytest.raises(ValueError, match=r"one of \('tpu', 'gpu', 'cpu'\), got 'TPU'"):
        colab_setup.detect_runtime(tmp_path)


@pytest.mark.parametrize("runtime, jax", [("tpu", "jax[tpu]"), ("gpu", "jax[cuda12]"),
                                          ("cpu", "jax")])
def test_requirements_are_the_package_ranges_with_jax_for_the_runtime(runtime, jax):
    wanted = [Requirement(r) for r in colab_setup.requirements(runtime)]
    expected = {Requirement(r).name: Requirement(r) for r in PYPROJECT["dependencies"]}
    assert {r.name: str(r.specifier) for r in wanted} == {
        n: str(r.specifier) for n, r in expected.items()}
    (jax_req,) = [r for r in wanted if r.name == "jax"]
    assert str(jax_req).startswith(jax + ">=") or str(jax_req).startswith(jax + "<")
    assert "torch" not in {r.name for r in wanted}, "PyTorch is never downloaded"
    with pytest.raises(ValueError, match="got 'TPU'"):
        colab_setup.requirements("TPU")


def test_constraints_keep_the_installed_versions_of_kept_packages():
    installed = {"numpy": "2.0.2", "pandas": "2.2.2", "torch": "2.9.0+cpu", "jax": "0.7.2",
                 "jaxlib": "0.7.2", "scikit-learn": "1.6.1", "flax": "0.11.2"}
    kept = ["numpy==2.0.2", "pandas==2.2.2", "scikit-learn==1.6.1", "torch==2.9.0+cpu"]
    assert colab_setup.constraints(installed) == kept + ["jax==0.7.2", "jaxlib==0.7.2"]
    assert colab_setup.constraints(installed, ">=0.7.2") == kept + [
        "jax==0.7.2", "jaxlib==0.7.2"]
    assert colab_setup.constraints(installed, ">=0.8") == kept, "an old jax must be upgraded"


def test_changes_lists_new_and_replaced_distributions():
    before = {"numpy": "2.0.2", "jax": "0.7.2", "flax": "0.11.2"}
    after = {"numpy": "2.0.2", "jax": "0.10.2", "flax": "0.11.2", "libtpu": "0.0.40"}
    assert colab_setup.changes(before, after) == {"jax": ("0.7.2", "0.10.2"),
                                                   "libtpu": (None, "0.0.40")}


def test_outside_colab_setup_installs_nothing_and_reports(monkeypatch, capsys):
    monkeypatch.delenv("MIXER_RUNTIME", raising=False)
    monkeypatch.setattr(colab_setup, "pip_install", lambda *a: pytest.fail("pip ran"))
    found = colab_setup.setup()
    out = capsys.readouterr().out
    assert found["backend"] == "cpu" and found["versions"]["jax"]
    assert "runtime: cpu" in out and "JAX backend: cpu" in out


def test_a_cpu_backend_on_an_accelerator_runtime_is_reported_loudly(monkeypatch, capsys):
    monkeypatch.setenv("MIXER_RUNTIME", "tpu")
    colab_setup.setup(install=False)
    err = capsys.readouterr().err
    assert "JAX FELL BACK TO THE CPU on a TPU runtime" in err


def fake_pip(monkeypatch, after: dict[str, str]) -> list:
    """pip_install records its arguments and 'installs' `after` over the real versions."""
    calls, real = [], INSTALLED()
    monkeypatch.setattr(colab_setup, "installed",
                        lambda: {**real, **after} if calls else real)
    monkeypatch.setattr(colab_setup, "pip_install",
                        lambda *a: calls.append(a) or "Downloading x.whl (1.5 MB)\n")
    return calls


def test_setup_restarts_once_when_pip_replaced_an_imported_package(
        monkeypatch, tmp_path, capsys):
    import numpy  # noqa: F401  (imported, as in Colab's kernel)

    monkeypatch.setenv("MIXER_RUNTIME", "cpu")
    monkeypatch.setattr(colab_setup, "RESTART_MARK", tmp_path / "restarted")
    kills = []
    monkeypatch.setattr(colab_setup.os, "kill", lambda pid, sig: kills.append(sig))

    calls = fake_pip(monkeypatch, {"numpy": "9.9.9"})
    colab_setup.setup(install=True)
    out = capsys.readouterr().out
    assert len(calls) == 1 and any(r.startswith("jax>=") for r in calls[0][0])
    assert kills == [colab_setup.signal.SIGKILL], "expected one kernel restart"
    assert "numpy" in out and "-> 9.9.9" in out and "Restarting the kernel" in out
    assert "downloaded 1.5 MB" in out

    fake_pip(monkeypatch, {"numpy": "9.9.9"})
    colab_setup.setup(install=True)
    out = capsys.readouterr().out
    assert kills == [colab_setup.signal.SIGKILL], "restarted a second time"
    assert "already restarted once" in out


def test_setup_does_not_restart_when_only_unimported_packages_changed(
        monkeypatch, tmp_path):
    monkeypatch.setenv("MIXER_RUNTIME", "cpu")
    monkeypatch.setattr(colab_setup, "RESTART_MARK", tmp_path / "restarted")
    monkeypatch.setattr(colab_setup.os, "kill", lambda *a: pytest.fail("restarted"))
    calls = fake_pip(monkeypatch, {"not-a-real-module-dist": "1.0"})
    colab_setup.setup(install=True)
    assert calls


def test_downloaded_bytes_adds_up_pips_download_lines():
    out = ("Collecting jax[tpu]>=0.7.2\n  Downloading jax-0.10.2-py3-none-any.whl (2.9 MB)\n"
           "  Downloading libtpu-0.0.40-cp313-none-any.whl (1.2 GB)\n"
           "Requirement already satisfied: numpy\n  Downloading six-1.17.0.whl (11 kB)\n")
    assert colab_setup.downloaded_bytes(out) == 2_900_000 + 1_200_000_000 + 11_000
    assert colab_setup.downloaded_bytes("Requirement already satisfied: jax\n") == 0


def test_pip_failure_says_what_was_kept(monkeypatch):
    with pytest.raises(RuntimeError, match=r"keeping numpy==0\.0\.1") as err:
        colab_setup.pip_install(["numpy>=2"], ["numpy==0.0.1"])
    assert "command:" in str(err.value)


# --- the setup cell in every notebook ---------------------------------------------

@pytest.mark.parametrize("path", notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_notebook_starts_with_the_generated_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code" and c.source.strip())
    assert first.source.startswith(setup_head(path)), (
        f"{path.relative_to(ROOT)}: the first code cell is not the generated setup cell; "
        "run `make sync-links`")


def test_sync_replaces_an_old_colab_block_and_keeps_the_rest(tmp_path):
    (tmp_path / "_config.yml").write_text((ROOT / "_config.yml").read_text())
    path = tmp_path / "exercises" / "07_demo" / "07_demo.ipynb"
    path.parent.mkdir(parents=True)
    old = ('# On Colab, install.\nimport sys\n\nif "google.colab" in sys.modules:\n'
           '    %pip install -q "mixer_ref[torch] @ git+https://example.org/x@y"\n'
           '    %cd /content\n\nimport otter\n\ngrader = otter.Notebook("07_demo.ipynb")')
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(old)]), path)

    assert sync_notebook(path, tmp_path)
    source = nbformat.read(path, as_version=4).cells[0].source
    assert source == setup_head(path, tmp_path) + (
        '\nimport otter\n\ngrader = otter.Notebook("07_demo.ipynb")')
    assert 'mixer_ref_setup.setup(exercise="07_demo")' in source
    assert "example.org" not in source and "%cd" not in source
    assert not sync_notebook(path, tmp_path), "a second sync changed it again"


def test_setup_tail_is_what_follows_the_head():
    head = setup_head(ROOT / "notebooks" / "01_patch_embedding.ipynb")
    assert setup_tail(with_setup_head("print(1)", head)).strip("\n") == "print(1)"
    assert setup_tail("print(1)") is None
    assert with_setup_head(None, head) == head.rstrip("\n")


# --- the emulation's helpers (the emulation itself: tests/test_colab_emulation.py) ---------

def test_freeze_pins_reads_only_exact_pins():
    from tools.colab.emulate import freeze_pins

    text = ("# comment\nnumpy==2.0.2\ntorch @ https://x/torch-2.9.0%2Bcpu-cp312.whl\n"
            "jax==0.7.2\n")
    assert freeze_pins(text) == {"numpy": "2.0.2", "jax": "0.7.2"}


def test_the_emulation_points_the_setup_cell_at_the_checkout(tmp_path):
    from tools.colab.drive import local_setup
    from tools.sync_repo_links import pip_url

    cell = setup_head(ROOT / "notebooks" / "01_patch_embedding.ipynb")
    local = local_setup(cell, pip_url(), tmp_path)
    assert f'"mixer_ref @ {tmp_path.as_uri()}"' in local and "github.com" not in local
    with pytest.raises(ValueError, match="not the setup cell"):
        local_setup('%pip install -q "mixer_ref[torch] @ git+' + pip_url() + '"', pip_url(),
                    tmp_path)


def test_without_torch_drops_pytorch_cells_and_import_lines():
    from tools.colab.drive import without_torch

    cells = [nbformat.v4.new_code_cell(s) for s in (
        "import jax\nimport torch\nprint(f'PyTorch {torch.__version__}')\nx = 1",
        "y = torch.zeros(3)\nprint(y)",
        "z = x + 1",
    )]
    kept, dropped = without_torch(cells)
    assert [c.source for c in kept] == ["import jax\nx = 1", "z = x + 1"] and dropped == 1

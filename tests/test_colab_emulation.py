"""The setup cell in an emulated Colab TPU runtime (tools/colab/emulate.py; `make colab`).

The emulated runtime is Colab's published TPU `pip freeze` (tools/colab/pip-freeze.tpu.txt)
on Python 3.13, with a kernel that has imported numpy and pandas and registered
`google.colab`. There is no TPU here, so the emulation checks the install and the report,
not TPU execution. PyTorch is not part of it (Colab's CPU build comes from PyTorch's own
index, out of reach here; PyPI's build pulls about 4 GB of CUDA libraries), so notebook 01
runs without its PyTorch cells: test_pytorch_cells_ran says so as a skip.

The first run builds the environment into .cache/colab/ (a few minutes, about 1.3 GB);
later runs reuse it and take a few minutes more.
"""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

pytestmark = [pytest.mark.colab, pytest.mark.slow]

# Colab's kernel has imported these, or they are big: the setup cell must leave them alone.
UNTOUCHED = ("numpy", "pandas", "scipy", "scikit-learn", "pillow")


@pytest.fixture(scope="module")
def report() -> dict:
    from tools.colab import emulate

    return emulate.run()


def test_setup_cell_installs_for_the_tpu_without_a_restart(report):
    setup = report["setup"]
    assert "TPU runtime: installing" in setup["output"], setup["output"]
    assert "jax[tpu]" in setup["output"], setup["output"]
    assert not setup["restarted"], f"the kernel was restarted:\n{setup['output']}"


def test_setup_cell_upgrades_nothing_colab_has_imported(report):
    changed = {name: (report["before"].get(name), report["after_setup"].get(name))
               for name in UNTOUCHED
               if report["before"].get(name) != report["after_setup"].get(name)}
    assert not changed, f"the setup cell changed Colab's packages (before, after): {changed}"


def test_jax_is_installed_with_its_matching_libtpu(report):
    after = report["after_setup"]
    jax_tpu = [Requirement(r) for r in report["jax_requires"]
               if Requirement(r).marker is not None
               and Requirement(r).marker.evaluate({"extra": "tpu"})
               and not Requirement(r).marker.evaluate({"extra": ""})]
    libtpu = [r for r in jax_tpu if r.name == "libtpu"]
    assert libtpu, f"jax {after['jax']} has no libtpu requirement under its tpu extra"
    assert libtpu[0].specifier.contains(Version(after["libtpu"]), prereleases=True), (
        f"libtpu {after['libtpu']} does not match jax {after['jax']}'s {libtpu[0]}")
    assert after["jaxlib"] == after["jax"], f"jax {after['jax']} with jaxlib {after['jaxlib']}"
    assert Version(after["flax"]) >= Version("0.12.0")


def test_setup_cell_says_loudly_that_jax_fell_back_to_the_cpu(report):
    # There is no TPU on this machine: the report must say so rather than run on quietly.
    assert "JAX FELL BACK TO THE CPU on a TPU runtime" in report["setup"]["output"]


def test_setup_cell_downloads_no_pytorch(report):
    assert "torch" not in report["after_setup"], "the setup cell installed PyTorch"
    assert 0 < report["download_bytes"] < 1_000_000_000, report["download_bytes"]


def test_notebook_01_runs_after_the_setup_cell(report):
    notebook = report["notebook"]
    assert notebook["error"] is None, notebook["error"]


def test_exercise_setup_installs_otter_and_fetches_the_tests(report):
    exercise = report["exercise"]
    assert exercise["error"] is None, exercise["error"]
    assert "otter-grader" in report["after"]
    assert "exercise tests: " in exercise["setup_output"], exercise["setup_output"]
    assert "q1 results" in exercise["check_output"], exercise["check_output"]


def test_exercise_grader_passes_a_correct_answer(report):
    # Without PyTorch too: no_mixer_ref() switches off what of mixer_ref can be imported.
    check = report["exercise"]["check_output"]
    assert "All test cases passed" in check, check


def test_pytorch_cells_ran(report):
    if not report["torch"]:
        cells = report["notebook_cells_without_torch"]
        pytest.skip(f"PyTorch is not in the emulated Colab (it cannot be installed here "
                    f"without ~4 GB of CUDA wheels): notebook 01 ran {cells['run']} code "
                    f"cells, {cells['dropped']} PyTorch cells were left out")
    assert report["notebook"]["error"] is None

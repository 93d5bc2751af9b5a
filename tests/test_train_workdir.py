"""Training never loses work: divergence guard, kept checkpoints, one run per workdir, the
resume check, atomic files, damaged checkpoints, SIGKILL mid-save, remote workdirs."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import mixer_ref
from mixer_ref.train import apply_overrides, fit, get_recipe, load_workdir, read_metrics
from mixer_ref.train import workdir as workdir_lib
from mixer_ref.train.__main__ import main
from mixer_ref.train.checkpointing import Checkpointer
from mixer_ref.train.loop import TrainingDiverged
from mixer_ref.train.metrics import MetricsWriter
from mixer_ref.train.workdir import ConfigMismatch, WorkdirLock, WorkdirLocked

SETTINGS = ["num_steps=6", "optim.warmup_steps=0", "checkpoint_every=2", "eval_every=0",
            "log_every=1", "batch_size=16"]


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    """The runs share JAX's persistent compilation cache (in-process and with the
    subprocess): compiling the step is most of their time. Restored afterwards."""
    from jax._src import compilation_cache as cache

    names = {"jax_compilation_cache_dir": str(tmp_path_factory.mktemp("jax_cache")),
             "jax_persistent_cache_min_compile_time_secs": 0,
             "jax_persistent_cache_min_entry_size_bytes": 0}
    before = {name: getattr(jax.config, name) for name in names}
    for name, value in names.items():
        jax.config.update(name, value)
    cache.reset_cache()
    yield names["jax_compilation_cache_dir"]
    for name, value in before.items():
        jax.config.update(name, value)
    cache.reset_cache()


def configure(*overrides):
    return apply_overrides(get_recipe("smoke"), [*SETTINGS, *overrides])


def steps(workdir, folder="checkpoints"):
    directory = os.path.join(workdir, folder)
    return sorted(int(d) for d in os.listdir(directory) if d.isdigit())


def params(model):
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def assert_same(a, b):
    for x, y in zip(params(a), params(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A finished 6-step run, checkpoints 2, 4 and 6; tests work on copies of it."""
    workdir = str(tmp_path_factory.mktemp("good"))
    model, _ = fit(configure(), workdir, progress=False)
    return workdir, model


@pytest.fixture
def copy(good, tmp_path):
    target = str(tmp_path / "run")
    shutil.copytree(good[0], target)
    return target


def files(workdir):
    return {name: open(os.path.join(workdir, name), "rb").read()
            for name in ("config.json", "model.json", "metrics.jsonl")}


# --- divergence ------------------------------------------------------------------------------


def test_a_diverging_resume_stops_and_keeps_every_good_checkpoint(copy, good):
    before = steps(copy)
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+.*last finite checkpoint "
                       r"is step 6.*kept.*--allow_config_change") as error:
        fit(configure("optim.learning_rate=1e6", "num_steps=14"), copy, progress=False,
            allow_config_change=True)
    assert error.value.last_good_step == 6 and error.value.step > 6
    assert steps(copy) == before == [2, 4, 6]
    assert_same(load_workdir(copy), good[1])
    (event,) = [r for r in read_metrics(copy) if r.get("event") == "diverged"]
    assert event["last_good_step"] == 6 and event["step"] == error.value.step


def test_a_diverging_run_exits_non_zero_and_saves_only_finite_checkpoints(tmp_path,
                                                                          capsys):
    code = main(["--config", "smoke", "--workdir", str(tmp_path), "--set", *SETTINGS,
                 "optim.learning_rate=1e6", "num_steps=14"])
    assert code == 3
    assert "Training diverged at step" in capsys.readouterr().err
    (event,) = [r for r in read_metrics(str(tmp_path)) if r["kind"] == "event"]
    assert event["event"] == "diverged" and steps(tmp_path)[-1] < event["step"]
    assert all(np.isfinite(p).all() for p in params(load_workdir(str(tmp_path))))
    assert not (tmp_path / "lock.json").exists()


def test_resume_skips_a_non_finite_checkpoint_left_by_an_older_version(copy, good):
    model = load_workdir(copy)
    optimizer = nnx.Optimizer(model, __import__("optax").sgd(0.1), wrt=nnx.Param)
    state = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(lambda x: x * jnp.nan, state))
    checkpointer = Checkpointer(copy)
    checkpointer.save(8, model, optimizer)
    checkpointer.close()
    with pytest.warns(UserWarning, match="Skipping checkpoint 8 .*non-finite"):
        assert_same(load_workdir(copy), good[1])


# --- which checkpoints are kept ---------------------------------------------------------------


def test_the_latest_three_and_the_best_evaluated_checkpoint_are_kept(tmp_path):
    model = mixer_ref.create_model("mixer_tiny")
    optimizer = nnx.Optimizer(model, __import__("optax").sgd(0.1), wrt=nnx.Param)
    checkpointer = Checkpointer(str(tmp_path), max_to_keep=3)
    accuracies = {1: 0.2, 2: 0.9, 3: 0.3, 4: None, 5: 0.4, 6: None, 7: 0.1}
    for step, accuracy in accuracies.items():
        checkpointer.save(step, model, optimizer,
                          None if accuracy is None else {"accuracy": accuracy, "loss": 1.0})
    assert checkpointer.best_step() == 2
    checkpointer.close()
    assert steps(tmp_path) == [2, 5, 6, 7]


# --- one run per workdir ----------------------------------------------------------------------


def test_a_workdir_held_by_a_live_run_is_refused_before_anything_is_written(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "lock.json").write_text(json.dumps(
            {"pid": holder.pid, "host": workdir_lib.socket.gethostname()}))
        with pytest.raises(WorkdirLocked, match=f"in use by another run \\(pid {holder.pid}"):
            fit(configure(), str(tmp_path), progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert sorted(os.listdir(tmp_path)) == ["lock.json"]


def test_a_stale_lock_is_taken_over_with_a_message(tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (tmp_path / "lock.json").write_text(json.dumps(
        {"pid": int(dead.stdout), "host": workdir_lib.socket.gethostname()}))
    with WorkdirLock(tmp_path) as lock:
        assert json.loads((tmp_path / "lock.json").read_text())["pid"] == os.getpid()
        assert lock.held
    assert f"pid {int(dead.stdout)}" in capsys.readouterr().out
    assert not (tmp_path / "lock.json").exists()


def test_a_lock_from_another_host_is_refused_and_names_the_file(tmp_path):
    (tmp_path / "lock.json").write_text(json.dumps({"pid": 1, "host": "tpu-vm-7"}))
    with pytest.raises(WorkdirLocked, match="host tpu-vm-7.*delete .*lock.json"):
        WorkdirLock(tmp_path).acquire()
    assert json.loads((tmp_path / "lock.json").read_text())["host"] == "tpu-vm-7"


# --- the resume check -------------------------------------------------------------------------


def test_another_architecture_is_refused_before_anything_is_written(copy):
    before = files(copy)
    with pytest.raises(ConfigMismatch, match="model.name: 'mixer_tiny' -> 'resmlp_tiny'"):
        fit(configure("model.name=resmlp_tiny"), copy, progress=False,
            allow_config_change=True)
    assert files(copy) == before
    assert load_workdir(copy).config.name == "mixer_tiny"


def test_changed_hyperparameters_need_the_flag(copy):
    before = files(copy)
    for override, key in [("optim.learning_rate=0.01", "optim.learning_rate: 0.003 -> 0.01"),
                          ("seed=1", "seed: 0 -> 1"), ("batch_size=8", "batch_size: 16 -> 8"),
                          ("num_steps=8", "num_steps: 6 -> 8")]:
        with pytest.raises(ConfigMismatch, match=f"{key}.*--allow_config_change"):
            fit(configure(override), copy, progress=False)
    assert files(copy) == before


def test_the_flag_logs_the_change_and_keeps_the_previous_config(copy, capsys):
    old = json.load(open(os.path.join(copy, "config.json")))
    url = f"file://{copy}"  # a file:// URL is the local path
    fit(configure("num_steps=8"), url, progress=False, allow_config_change=True)
    assert "Resumed from" in capsys.readouterr().out and steps(copy)[-1] == 8
    assert load_workdir(url).config == mixer_ref.load_pretrained(url).config
    (event,) = [r for r in read_metrics(copy) if r["kind"] == "event"]
    assert event == {"kind": "event", "event": "config_change", "step": 6,
                     "changes": {"num_steps": {"old": 6, "new": 8}},
                     "previous_config": "config.step6.json"}
    assert json.load(open(os.path.join(copy, "config.step6.json"))) == old
    assert json.load(open(os.path.join(copy, "config.json")))["num_steps"] == 8


def test_logging_intervals_may_change_without_the_flag(copy):
    fit(configure("log_every=3", "checkpoint_every=3"), copy, progress=False)
    assert json.load(open(os.path.join(copy, "config.json")))["log_every"] == 3
    (event,) = [r for r in read_metrics(copy) if r["kind"] == "event"]
    assert event["changes"] == {"checkpoint_every": {"old": 2, "new": 3},
                                "log_every": {"old": 1, "new": 3}}


# --- atomic files and a torn metrics line -----------------------------------------------------


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    file = workdir_lib.path(tmp_path) / "config.json"
    workdir_lib.write_atomic(file, "old")

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        workdir_lib.write_atomic(file, "new")
    assert file.read_text() == "old" and os.listdir(tmp_path) == ["config.json"]


def test_a_torn_last_metrics_line_is_skipped_with_a_warning(copy):
    with open(os.path.join(copy, "metrics.jsonl"), "a") as f:
        f.write('{"kind": "train", "st')
    with pytest.warns(UserWarning, match="Skipping the last line of .*metrics.jsonl"):
        records = read_metrics(copy)
    assert records[-1]["step"] == 6
    with pytest.warns(UserWarning):
        _, history = fit(configure(), copy, progress=False)
    assert history == records  # the writer dropped the torn line when it rewrote the file


def test_a_bad_metrics_line_in_the_middle_names_its_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 1}\nnot json\n{}\n')
    with pytest.raises(ValueError, match="metrics.jsonl, line 2, is not a JSON record"):
        read_metrics(str(tmp_path))


# --- damaged checkpoints ----------------------------------------------------------------------


def test_an_empty_latest_checkpoint_is_skipped_and_set_aside(copy, good):
    os.mkdir(os.path.join(copy, "checkpoints", "8"))
    with pytest.warns(UserWarning, match="Skipping checkpoint 8"):
        assert_same(mixer_ref.load_pretrained(copy), good[1])
    with pytest.warns(UserWarning, match="Skipping checkpoint 8"):
        fit(configure(), copy, progress=False)  # resumes at 6: nothing left to train
    assert steps(copy) == [2, 4, 6] and steps(copy, "damaged_checkpoints") == [8]
    assert_same(mixer_ref.load_pretrained(copy), good[1])  # no warning now


def test_a_damaged_latest_checkpoint_is_skipped(copy, good):
    params_dir = os.path.join(copy, "checkpoints", "6", "params")
    for root, _, names in os.walk(params_dir):
        for name in names:
            if not name.startswith("_"):
                open(os.path.join(root, name), "wb").close()  # truncate the array data
    with pytest.warns(UserWarning, match="Skipping checkpoint 6"):
        fit(configure(), copy, progress=False)  # resumes at 4, trains 5 and 6 again
    assert steps(copy, "damaged_checkpoints") == [6]
    assert_same(load_workdir(copy), good[1])  # the same data order: the same parameters


def test_a_checkpoint_that_cannot_load_is_one_value_error(copy):
    shutil.rmtree(os.path.join(copy, "checkpoints", "6", "params"))
    with pytest.raises(ValueError, match="No checkpoint 5 in .*holds steps \\[2, 4, 6\\]"):
        load_workdir(copy, step=5)
    with pytest.raises(ValueError, match="Cannot load .*no checkpoint restores.*step 6"):
        load_workdir(copy, step=6)


# --- SIGKILL in the middle of a save ----------------------------------------------------------

KILL_DURING_SAVE = textwrap.dedent("""
    import os, signal, sys
    from orbax.checkpoint._src.path import atomicity
    from mixer_ref.train import apply_overrides, fit, get_recipe

    finalize = atomicity.AtomicRenameTemporaryPath.finalize

    async def killed_before_commit(self, *args, **kwargs):
        if self._final_path.name == "4":  # the data is written, the rename is not
            os.kill(os.getpid(), signal.SIGKILL)
        return await finalize(self, *args, **kwargs)

    atomicity.AtomicRenameTemporaryPath.finalize = killed_before_commit
    config = apply_overrides(get_recipe("smoke"), sys.argv[2:])
    fit(config, sys.argv[1], progress=False)
""")


def test_a_run_killed_during_a_save_resumes_to_the_same_result(tmp_path, good,
                                                              compilation_cache):
    workdir = str(tmp_path / "run")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": compilation_cache,
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, workdir, *SETTINGS],
                            env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert steps(workdir) == [2]
    assert any("tmp" in d for d in os.listdir(os.path.join(workdir, "checkpoints")))
    model, _ = fit(configure(), workdir, progress=False)  # takes over the stale lock
    assert steps(workdir) == [2, 4, 6]
    assert not any("tmp" in d for d in os.listdir(os.path.join(workdir, "checkpoints")))
    assert_same(model, good[1])


# --- remote workdirs --------------------------------------------------------------------------


def test_gs_workdirs_write_through_the_path_layer(tmp_path, monkeypatch, good):
    """A documented mock of the path layer: ``workdir.path`` maps ``gs://bucket/...`` into
    a local folder, so the test sees every file the run writes. A workdir path that bypassed
    the layer (``open``/``os.path`` on the URL) would land in the working directory as
    ``gs:/bucket/...`` or fail."""
    bucket = tmp_path / "bucket"
    real_path = workdir_lib.path

    def fake_path(workdir):
        text = os.fspath(workdir)
        if text.startswith("gs://bucket/"):
            return real_path(bucket / text.removeprefix("gs://bucket/"))
        return real_path(workdir)

    monkeypatch.setattr(workdir_lib, "path", fake_path)
    monkeypatch.chdir(tmp_path)
    model, history = fit(configure(), "gs://bucket/run", progress=False)
    assert sorted(os.listdir(bucket / "run")) == ["checkpoints", "config.json", "metrics.jsonl",
                                                  "model.json"]
    assert sorted(os.listdir(tmp_path)) == ["bucket"]  # nothing under ./gs:
    assert history == read_metrics("gs://bucket/run") and history[-1]["step"] == 6
    assert_same(mixer_ref.load_pretrained("gs://bucket/run"), good[1])


def test_metrics_config_and_lock_reach_a_fake_gcs(tmp_path, monkeypatch):
    """epath's ``gs://`` backend is fsspec: registering a local-folder filesystem for
    ``gs``/``gcs`` gives a fake GCS for every workdir file that Orbax (tensorstore) does
    not write."""
    from etils.epath import backend
    from fsspec.implementations.local import LocalFileSystem
    from fsspec.registry import _registry

    root = str(tmp_path / "gcs")

    class FakeGCS(LocalFileSystem):
        protocol = ("gs", "gcs")

        def __init__(self, *args, finalize_on_close=True, **kwargs):
            super().__init__(*args, **kwargs)

        @classmethod
        def _strip_protocol(cls, path):
            path = os.fspath(path)
            for prefix in ("gs://", "gcs://"):
                if path.startswith(prefix):
                    return os.path.join(root, path.removeprefix(prefix))
            return super()._strip_protocol(path)

    for protocol in ("gs", "gcs"):
        monkeypatch.setitem(_registry, protocol, FakeGCS)
    monkeypatch.setattr("etils.epath.gpath._is_tf_installed", lambda: False)
    monkeypatch.chdir(tmp_path)
    backend.fsspec_backend._get_filesystem.cache_clear()
    try:
        writer = MetricsWriter("gs://bucket/run")
        writer.write({"kind": "train", "step": 1, "loss": 2.0})
        writer.write({"kind": "train", "step": 2, "loss": 1.0})
        model = mixer_ref.create_model("mixer_tiny")
        workdir_lib.write_configs("gs://bucket/run", configure(), model.config)
        with WorkdirLock("gs://bucket/run"):
            assert os.path.exists(f"{root}/bucket/run/lock.json")
            with pytest.raises(WorkdirLocked, match="in use by another run"):
                WorkdirLock("gs://bucket/run").acquire()
        assert [r["step"] for r in read_metrics("gs://bucket/run")] == [1, 2]
        assert workdir_lib.read_config("gs://bucket/run") == configure()
        assert workdir_lib.read_model_config("gs://bucket/run") == model.config
    finally:
        backend.fsspec_backend._get_filesystem.cache_clear()
    assert sorted(os.listdir(f"{root}/bucket/run")) == ["config.json", "metrics.jsonl",
                                                        "model.json"]
    assert sorted(os.listdir(tmp_path)) == ["gcs"]  # nothing under ./gs:

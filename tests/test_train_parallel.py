"""The command line across devices and processes, and across interruptions.

Every run is a subprocess of ``python -m mixer_ref.train`` on CPU: the device count must be
fixed before JAX is imported. The runs use momentum SGD, whose update is linear in the
gradient, so that float rounding differences between reduction orders stay at float level
(Adam divides by √v and would amplify them on near-zero gradients).
"""

import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from flax import nnx

from mixer_ref.train import load_workdir, read_metrics

pytestmark = pytest.mark.slow

OVERRIDES = [
    "num_steps=24", "optim.optimizer=sgd", "optim.weight_decay=0", "optim.learning_rate=0.05",
    "optim.schedule=cosine", "optim.warmup_steps=3", "log_every=3", "checkpoint_every=3",
    "eval_every=0", "augment.crop=pad", "augment.flip=true", "augment.mixup_alpha=0.2",
    "model.dropout=0.1",
]
FLOAT_TOLERANCE = 1e-5
CACHE_DIR = None


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    """The runs share JAX's persistent compilation cache: compiling is most of their time."""
    global CACHE_DIR
    CACHE_DIR = str(tmp_path_factory.mktemp("jax_cache"))


def start(workdir, *flags, devices=1):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=CACHE_DIR,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    command = [sys.executable, "-m", "mixer_ref.train", "--config", "smoke", "--workdir",
               str(workdir), "--set", *OVERRIDES, *flags]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(process):
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return output


def params(workdir):
    return jax.tree.leaves(nnx.state(load_workdir(str(workdir)), nnx.Param))


def max_diff(a, b):
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
               for x, y in zip(params(a), params(b), strict=True))


def wait_for_checkpoint(workdir, step, process):
    path = os.path.join(workdir, "checkpoints", str(step))
    while not os.path.isdir(path):
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.02)


def latest_step(workdir):
    return max(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process, one device, uninterrupted."""
    workdir = tmp_path_factory.mktemp("reference")
    finish(start(workdir))
    return workdir


def test_eight_devices_match_one_device(reference, tmp_path):
    finish(start(tmp_path, devices=8))
    diff = max_diff(tmp_path, reference)
    print(f"8 devices vs 1: max |Δparam| = {diff:.2e}")
    assert diff < FLOAT_TOLERANCE
    losses = [[r["loss"] for r in read_metrics(str(w))] for w in (tmp_path, reference)]
    np.testing.assert_allclose(*losses, rtol=1e-5)


def test_two_processes_match_one_process(reference, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = ["--coordinator_address", f"127.0.0.1:{port}", "--num_processes", "2"]
    processes = [start(tmp_path, *flags, "--process_id", str(i)) for i in range(2)]
    for process in processes:
        finish(process)
    diff = max_diff(tmp_path, reference)
    print(f"2 processes vs 1: max |Δparam| = {diff:.2e}")
    assert diff < FLOAT_TOLERANCE


def test_a_killed_run_resumes_to_bit_identical_parameters(reference, tmp_path):
    process = start(tmp_path)
    wait_for_checkpoint(tmp_path, 3, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert latest_step(tmp_path) < 24, "the run finished before it could be killed"
    output = finish(start(tmp_path))
    assert "Resumed from" in output
    for x, y in zip(params(tmp_path), params(reference), strict=True):
        np.testing.assert_array_equal(x, y)


def test_sigterm_checkpoints_at_the_next_step_and_exits_cleanly(tmp_path):
    process = start(tmp_path)
    wait_for_checkpoint(tmp_path, 3, process)
    process.send_signal(signal.SIGTERM)
    output = finish(process)  # exit code 0
    assert "SIGTERM: saved a checkpoint at step" in output
    step = int(output.split("checkpoint at step ")[1].split()[0])
    assert 3 <= step < 24 and latest_step(tmp_path) == step
    records = read_metrics(str(tmp_path))
    assert records[-1]["step"] <= step

"""The training loop in one process: metrics, workdir layout, evaluation and fine-tuning."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from mixer_ref.data import pipeline
from mixer_ref.train import (
    apply_overrides,
    build_model,
    evaluate,
    fit,
    get_recipe,
    load_workdir,
    plot_history,
    read_metrics,
)

TINY = ["num_steps=6", "optim.warmup_steps=2", "log_every=3", "eval_every=6",
        "checkpoint_every=6", "batch_size=16", "eval_batch_size=64"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("smoke"))
    config = apply_overrides(get_recipe("smoke"), TINY)
    model, history = fit(config, workdir, progress=False)
    return workdir, config, model, history


def test_fit_writes_metrics_with_the_expected_fields(run):
    workdir, _, _, history = run
    records = [json.loads(line) for line in open(f"{workdir}/metrics.jsonl")]
    assert records == history
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [3, 6]
    for r in train:
        assert set(r) == {"kind", "step", "loss", "accuracy", "lr", "images_per_sec", "mfu"}
        assert np.isfinite(r["loss"]) and 0 <= r["accuracy"] <= 1
        assert r["images_per_sec"] > 0 and 0 < r["mfu"] < 1
    (last_eval,) = [r for r in records if r["kind"] == "eval"]
    assert last_eval["step"] == 6 and set(last_eval) == {"kind", "step", "loss", "accuracy"}


def test_the_workdir_holds_config_model_and_checkpoint(run):
    workdir, config, model, _ = run
    assert json.load(open(f"{workdir}/config.json"))["num_steps"] == config.num_steps
    restored = load_workdir(workdir)
    assert restored.config == model.config
    a, b = nnx.state(restored, nnx.Param), nnx.state(model, nnx.Param)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_evaluate_agrees_with_the_logged_eval(run):
    workdir, _, model, history = run
    data = pipeline.synthetic(256, 32, 10, split="test")
    result = evaluate(model, data, batch_size=100)  # padded last batch
    logged = history[-1]
    assert logged["kind"] == "eval"
    assert result["accuracy"] == pytest.approx(logged["accuracy"])
    assert result["loss"] == pytest.approx(logged["loss"], rel=1e-5)


def test_resuming_a_finished_run_trains_no_further(run):
    workdir, config, model, _ = run
    again, history = fit(config, workdir, progress=False)
    for x, y in zip(jax.tree.leaves(nnx.state(again, nnx.Param)),
                    jax.tree.leaves(nnx.state(model, nnx.Param)), strict=True):
        np.testing.assert_array_equal(x, y)


def test_plot_history_labels_its_axes(run):
    import matplotlib

    matplotlib.use("Agg")
    axes = plot_history(run[0])
    assert [ax.get_ylabel() for ax in axes][:2] == ["loss (cross-entropy, nats)",
                                                   "accuracy (%)"]
    assert all(ax.get_xlabel() for ax in axes)


def test_fine_tuning_copies_the_body_and_starts_from_a_zero_head(run):
    workdir, _, model, _ = run
    config = apply_overrides(get_recipe("finetune_digits"), [f"model.pretrained={workdir}"])
    tuned = build_model(config, num_classes=4)
    new, old = nnx.state(tuned, nnx.Param), nnx.state(model, nnx.Param)
    assert new["head"]["kernel"].shape == (64, 4)
    assert not np.any(new["head"]["kernel"][...]) and not np.any(new["head"]["bias"][...])
    np.testing.assert_array_equal(new["stem"]["proj"]["kernel"][...],
                                  old["stem"]["proj"]["kernel"][...])


def test_read_metrics_keeps_the_last_record_of_a_repeated_step(tmp_path):
    lines = [{"kind": "train", "step": 5, "loss": 2.0}, {"kind": "train", "step": 5, "loss": 1.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert read_metrics(str(tmp_path)) == [lines[1]]


def test_read_metrics_says_why_a_workdir_has_no_metrics(tmp_path):
    with pytest.raises(FileNotFoundError, match="logged nothing: it stopped before"):
        read_metrics(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        read_metrics(str(tmp_path / "missing"))

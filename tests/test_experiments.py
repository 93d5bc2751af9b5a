"""mixer_ref.experiments: subsets, one training budget for every model, the data-scale sweep."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mixer_ref import experiments, train
from mixer_ref.baselines import ResNetTiny
from mixer_ref.data import ArrayDataset, pipeline


def labelled(counts) -> ArrayDataset:
    """A dataset with ``counts[c]`` images of class c; image i holds the value i % 256."""
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int32)
    images = np.broadcast_to((np.arange(len(labels)) % 256).astype(np.uint8)[:, None, None, None],
                             (len(labels), 4, 4, 3)).copy()
    return ArrayDataset(images, labels, len(counts), tuple(f"c{i}" for i in range(len(counts))),
                        "toy")


# --- subsets -----------------------------------------------------------------------------------


def test_balanced_subset_spreads_the_remainder_over_the_first_classes():
    subset = experiments.balanced_subset(labelled([10] * 10), 25, seed=3)
    assert np.bincount(subset.labels).tolist() == [3] * 5 + [2] * 5
    assert (subset.num_classes, subset.name) == (10, "toy")
    # Images travel with their labels, in the dataset's order.
    np.testing.assert_array_equal(subset.images[:, 0, 0, 0] // 10, subset.labels)
    assert np.all(np.diff(subset.images[:, 0, 0, 0].astype(int)) > 0)


def test_balanced_subsets_of_one_seed_are_nested_and_seeds_differ():
    data = labelled([50] * 4)
    small, large = (experiments.balanced_subset(data, n, seed=0) for n in (8, 40))
    assert set(small.images[:, 0, 0, 0]) <= set(large.images[:, 0, 0, 0])
    other = experiments.balanced_subset(data, 8, seed=1)
    assert set(other.images[:, 0, 0, 0]) != set(small.images[:, 0, 0, 0])


@pytest.mark.parametrize("size", [0, 41, 12])
def test_balanced_subset_refuses_what_the_classes_cannot_give(size):
    data = labelled([20, 20, 1])  # 12 would need 4 of class 2
    with pytest.raises(ValueError, match=f"balanced subset of {size} images from 41"):
        experiments.balanced_subset(data, size)


def test_class_subset_keeps_and_relabels_in_the_order_given():
    data = labelled([2, 3, 4, 5])
    part = experiments.class_subset(data, [3, 1])
    assert part.class_names == ("c3", "c1") and part.num_classes == 2
    assert np.bincount(part.labels).tolist() == [5, 3]
    np.testing.assert_array_equal(part.images[:, 0, 0, 0],
                                  np.concatenate([np.arange(2, 5), np.arange(9, 14)]))


@pytest.mark.parametrize("classes", [[], [0, 0], [4], [-1]])
def test_class_subset_rejects_bad_class_lists(classes):
    with pytest.raises(ValueError, match=r"expected distinct classes in \[0, 4\)"):
        experiments.class_subset(labelled([2, 3, 4, 5]), classes)


def test_a_learner_is_a_registry_model_or_a_constructor():
    with pytest.raises(ValueError, match="exactly one of name="):
        experiments.Learner("x")
    with pytest.raises(ValueError, match="exactly one of name="):
        experiments.Learner("x", name="mixer_tiny", make=ResNetTiny)
    assert experiments.cnn((8, 16)).make.keywords == {"widths": (8, 16), "stem_stride": 1}
    assert experiments.cnn((8,), stem_stride=2).make.keywords["stem_stride"] == 2


# --- training --------------------------------------------------------------------------------

TINY = train.apply_overrides(train.get_recipe("smoke"), [
    "num_steps=3", "batch_size=8", "optim.warmup_steps=1", "log_every=1", "eval_every=3",
    "checkpoint_every=3", "eval_batch_size=16"])
# Logging and evaluation on schedules that do not divide each other.
OFFBEAT = train.apply_overrides(TINY, ["num_steps=6", "log_every=4", "eval_every=3"])


@pytest.fixture(scope="module")
def toy():
    return (pipeline.synthetic(32, 32, 4, split="train"),
            pipeline.synthetic(16, 32, 4, split="test"))


def test_fit_module_trains_any_module_like_fit(tmp_path, toy):
    train_data, test_data = toy
    model, history = experiments.fit_learner(experiments.cnn((8, 16)), TINY, tmp_path,
                                             train_data, test_data, progress=False)
    assert isinstance(model, ResNetTiny) and model.widths == (8, 16)
    steps = [r["step"] for r in history if r["kind"] == "train"]
    assert steps == [1, 2, 3]
    evaluation = [r for r in history if r["kind"] == "eval"]
    assert [r["step"] for r in evaluation] == [3]
    assert evaluation[0]["accuracy"] == train.evaluate(model, test_data, 16)["accuracy"]
    # The same optimizer and schedule as fit: the lr of each logged step.
    schedule = train.make_schedule(TINY.optim, TINY.num_steps)
    assert [r["lr"] for r in history if r["kind"] == "train"] == pytest.approx(
        [float(schedule(s)) for s in range(3)])


def test_fit_module_evaluates_every_eval_every_steps_whatever_log_every(tmp_path, toy):
    _, history = experiments.fit_learner(experiments.cnn((8,)), OFFBEAT, tmp_path, *toy,
                                         progress=False)
    assert [r["step"] for r in history if r["kind"] == "eval"] == [3, 6]
    assert [r["step"] for r in history if r["kind"] == "train"] == [4, 6]


def test_fit_learner_sends_registry_models_through_fit(tmp_path, toy, monkeypatch):
    calls = []
    monkeypatch.setattr(train, "fit", lambda config, workdir, **kw: calls.append(config) or (
        "model", []))
    experiments.fit_learner(experiments.Learner("R", "resmlp_tiny"), TINY, tmp_path, *toy)
    assert calls[0].model.name == "resmlp_tiny"
    assert dataclasses.replace(calls[0], model=TINY.model) == TINY


class Constant(nnx.Module):
    """Always predicts class 0."""

    def __init__(self):
        self.bias = nnx.Param(jnp.zeros(4).at[0].set(1.0))

    def __call__(self, images):
        return jnp.zeros((images.shape[0], 4)) + self.bias[...]


def test_score_measures_train_and_test_accuracy_without_training(toy):
    train_data, test_data = toy
    row = experiments.score(experiments.Learner("K", "mixer_tiny"), Constant(), train_data,
                            test_data, steps=10, batch_size=8, seconds=1.5)
    assert row == dict(model="K", size=32, steps=10, epochs=2.5,
                       train_accuracy=pytest.approx(np.mean(train_data.labels == 0)),
                       test_accuracy=pytest.approx(np.mean(test_data.labels == 0)),
                       seconds=1.5)


def test_the_sweep_gives_each_size_its_steps_and_a_balanced_subset(tmp_path, monkeypatch):
    data = labelled([30] * 4)
    runs = []

    def fake_fit(learner, config, workdir, train_data, eval_data=None, progress=True):
        runs.append((learner.label, config, len(train_data), np.bincount(train_data.labels)))
        return Constant(), []

    monkeypatch.setattr(experiments, "fit_learner", fake_fit)
    config = dataclasses.replace(TINY, optim=dataclasses.replace(TINY.optim, warmup_steps=50))
    learners = [experiments.Learner("M", "mixer_tiny"), experiments.cnn((8,))]
    rows = experiments.data_scale_sweep(learners, {8: 20, 40: 300}, data, data, config,
                                        tmp_path, progress=False)
    assert [(r["model"], r["size"], r["steps"]) for r in rows] == [
        ("M", 8, 20), ("CNN", 8, 20), ("M", 40, 300), ("CNN", 40, 300)]
    for (_, run, size, counts), row in zip(runs, rows, strict=True):
        assert run.num_steps == row["steps"] and run.eval_every == 0
        assert run.optim.warmup_steps == min(50, row["steps"] // 10)
        assert size == row["size"] and counts.tolist() == [size // 4] * 4
        assert row["epochs"] == row["steps"] * config.batch_size / size
        assert row["test_accuracy"] == pytest.approx(0.25)


def test_a_real_sweep_runs_end_to_end(tmp_path, toy):
    train_data, test_data = toy
    rows = experiments.data_scale_sweep([experiments.Learner("M", "mixer_tiny")], {16: 2},
                                        train_data, test_data, TINY, tmp_path, progress=False)
    assert len(rows) == 1 and 0 <= rows[0]["test_accuracy"] <= 1
    assert rows[0]["size"] == 16 and rows[0]["steps"] == 2


# --- standard errors ---------------------------------------------------------------------------


def test_binomial_stderr_is_the_spread_of_an_accuracy_over_test_sets():
    assert experiments.binomial_stderr(0.5, 10_000) == pytest.approx(0.005)
    assert experiments.binomial_stderr(1.0, 50) == 0.0
    # It matches the spread of accuracies measured on many random test sets of n images.
    rng = np.random.default_rng(0)
    measured = rng.binomial(400, 0.8, size=20_000) / 400
    assert measured.std() == pytest.approx(experiments.binomial_stderr(0.8, 400), rel=0.02)


@pytest.mark.parametrize("accuracy, n", [(1.2, 10), (-0.1, 10), (0.5, 0)])
def test_binomial_stderr_rejects_what_is_not_an_accuracy(accuracy, n):
    with pytest.raises(ValueError, match="accuracy in"):
        experiments.binomial_stderr(accuracy, n)


def test_mean_and_stderr_uses_the_sample_deviation_over_root_n():
    mean, error = experiments.mean_and_stderr([0.7, 0.8, 0.9])
    assert mean == pytest.approx(0.8) and error == pytest.approx(0.1 / np.sqrt(3))
    mean, error = experiments.mean_and_stderr([0.5])
    assert mean == 0.5 and np.isnan(error)
    with pytest.raises(ValueError, match="non-empty"):
        experiments.mean_and_stderr([])

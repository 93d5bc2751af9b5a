"""Helpers shared by the exercises' tests: no mixer_ref while the learner's code runs,
random draws, and failure messages that say what was expected and what was received.

Shipped next to every exercise notebook (student and autograder copies), so the tests can
``from grading_support import ...`` inside otter's test functions.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
from collections.abc import Iterator

import numpy as np

FORBIDDEN = "calling mixer_ref here is not allowed; implement it yourself"

# Names that only read or validate configurations: the learner may use them.
ALLOWED = {"get_config", "list_models", "canonical_name", "validate_config", "check_images",
           "get_profile"}
METHODS = ("__init__", "__call__", "forward")
MODULES = ("mixer_ref", "mixer_ref.configs", "mixer_ref.models", "mixer_ref.folding",
           "mixer_ref.surgery", "mixer_ref.flops", "mixer_ref.interop", "mixer_ref.checkpoints",
           "mixer_ref.flax", "mixer_ref.flax.layers", "mixer_ref.flax.mixer",
           "mixer_ref.flax.resmlp", "mixer_ref.torch", "mixer_ref.torch.layers",
           "mixer_ref.torch.mixer", "mixer_ref.torch.resmlp")


class MixerRefForbidden(RuntimeError):
    """Raised when the learner's code calls into mixer_ref during a graded call."""


def _raiser(name: str):
    message = f"{name}: {FORBIDDEN}."
    namespace: dict = {}
    exec(f"def _forbidden(*args, **kwargs):\n    raise RuntimeError({message!r})", namespace)
    return namespace["_forbidden"]


def _is_config_class(obj) -> bool:
    return getattr(obj, "__dataclass_fields__", None) is not None


@contextlib.contextmanager
def no_mixer_ref() -> Iterator[None]:
    """Within this block every mixer_ref function and model class raises RuntimeError.

    Functions are disabled by swapping their code object, so aliases such as
    ``from mixer_ref.folding import fold_affine`` are caught too; classes by replacing
    ``__init__``, ``__call__`` and ``forward``. Configs stay usable.
    """
    undo = []
    try:
        for module_name in MODULES:
            module = sys.modules.get(module_name) or importlib.import_module(module_name)
            for name, obj in list(vars(module).items()):
                if name.startswith("_") or name in ALLOWED:
                    continue
                if getattr(obj, "__module__", "").split(".")[0] != "mixer_ref":
                    continue
                if inspect.isfunction(obj) and not obj.__code__.co_freevars:
                    undo.append((obj, "__code__", obj.__code__))
                    obj.__code__ = _raiser(f"mixer_ref {name}()").__code__
                elif inspect.isclass(obj) and not _is_config_class(obj):
                    for method in METHODS:
                        if method in vars(obj):
                            undo.append((obj, method, vars(obj)[method]))
                            setattr(obj, method, _raiser(f"mixer_ref {name}.{method}"))
            for name, obj in list(vars(module).items()):
                # Functions held by data, such as mixer_ref.interop.CONV.to_theirs.
                if _is_config_class(obj) and not inspect.isclass(obj):
                    for value in vars(obj).values():
                        if inspect.isfunction(value) and not value.__code__.co_freevars:
                            undo.append((value, "__code__", value.__code__))
                            value.__code__ = _raiser(f"mixer_ref {name}").__code__
        yield
    finally:
        for obj, attr, value in reversed(undo):
            setattr(obj, attr, value)


def call_learner(fn, *args, what: str, **kwargs):
    """Calls the learner's ``fn`` with mixer_ref disabled; explains any exception."""
    if fn is None:
        raise AssertionError(f"{what}: the name is not defined; run the cell that defines it.")
    try:
        with no_mixer_ref():
            return fn(*args, **kwargs)
    except RuntimeError as err:
        if FORBIDDEN in str(err):
            raise AssertionError(f"{what} called mixer_ref ({err}). Write it with NumPy, "
                                 "JAX or PyTorch operations instead.") from None
        raise AssertionError(f"{what} raised {type(err).__name__}: {err}") from None
    except Exception as err:  # the learner's bug, reported in words
        raise AssertionError(f"{what} raised {type(err).__name__}: {err}") from None


def expect_raises(fn, *args, error=ValueError, what: str, why: str):
    """Asserts that the learner's ``fn(*args)`` raises ``error``."""
    try:
        with no_mixer_ref():
            fn(*args)
    except error:
        return
    except Exception as err:
        raise AssertionError(f"{what} raised {type(err).__name__}: {err}; expected a "
                             f"{error.__name__} because {why}.") from None
    raise AssertionError(f"{what} returned without an error; expected a {error.__name__} "
                         f"because {why}.")


def as_numpy(x) -> np.ndarray:
    """NumPy view of a NumPy, JAX or PyTorch array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def expect_shape(got, shape: tuple, what: str, meaning: str = "", hint: str = ""):
    if not hasattr(got, "shape"):
        raise AssertionError(f"{what} returned {type(got).__name__} {str(got)[:60]}; expected "
                             f"an array of shape {tuple(shape)}. Is the function finished "
                             "(no `...` left) and does it `return` its result?")
    got_shape = tuple(got.shape)
    if got_shape != tuple(shape):
        message = f"{what} returned shape {got_shape}; expected {tuple(shape)}"
        message += f" = {meaning}." if meaning else "."
        raise AssertionError(message + (f" {hint}" if hint else ""))


def expect_close(got, want, what: str, *, atol: float = 1e-5, rtol: float = 1e-5,
                 meaning: str = "", hint: str = ""):
    """Asserts shape equality, then closeness, with a message for a learner."""
    want = as_numpy(want)
    expect_shape(got, want.shape, what, meaning, hint)
    got = as_numpy(got).astype(np.float64)
    if not np.all(np.isfinite(got)):
        raise AssertionError(f"{what} returned NaN or infinite values. {hint}".strip())
    diff = np.abs(got - want)
    bad = diff > atol + rtol * np.abs(want)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what} has the right shape {want.shape} but wrong values: the largest error is "
            f"{diff.max():.3g} (tolerance {atol:g} + {rtol:g}·|expected|); e.g. at index "
            f"{index} expected {want[index]:.6g}, got {got[index]:.6g}. {hint}".rstrip())


def draws(seed: int, n: int) -> Iterator[np.random.Generator]:
    """``n`` independent random generators, reproducible from ``seed``."""
    for child in np.random.SeedSequence(seed).spawn(n):
        yield np.random.default_rng(child)


def randomise_flax(module, rng: np.random.Generator, scale: float = 0.1):
    """Adds noise to every parameter of a Flax NNX module (so zeros and ones hide nothing)."""
    import jax
    from flax import nnx

    state = nnx.state(module, nnx.Param)
    noisy = jax.tree.map(
        lambda p: p + scale * rng.standard_normal(p.shape).astype(np.float32), state)
    nnx.update(module, noisy)
    return module


def flax_params(module) -> dict:
    """The parameters of a Flax NNX module as nested dicts of NumPy arrays.

    Kernels keep Flax's (in, out) layout; LayerNorm has ``scale`` and ``bias``; the blocks
    of a model are a list.
    """
    from flax import nnx

    pure = nnx.to_pure_dict(nnx.state(module, nnx.Param))

    def convert(tree):
        if isinstance(tree, dict):
            if tree and all(isinstance(k, int) for k in tree):
                return [convert(tree[k]) for k in sorted(tree)]
            return {str(k): convert(v) for k, v in tree.items()}
        return np.asarray(tree)

    return convert(pure)

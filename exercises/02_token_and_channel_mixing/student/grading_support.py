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

# In the notebook, no_mixer_ref() disables all of mixer_ref during a learner call; when
# grading, mixer_ref cannot even be imported where the learner's code runs (runner.py).
ALLOWED: set[str] = set()  # nothing of mixer_ref may run inside a graded call
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


def _import(name: str):
    """The module ``name``, or None when it needs PyTorch and PyTorch is not installed (then
    the learner's code cannot call it either, so there is nothing to switch off)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name == "torch":
            return None
        raise


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
        loaded = [n for n in sys.modules if n.split(".")[0] == "mixer_ref"]
        for module_name in dict.fromkeys([*MODULES, *loaded]):
            module = sys.modules.get(module_name) or _import(module_name)
            if module is None:
                continue
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


def _is_remote(fn) -> bool:
    """True for a learner's object that lives in the grader's sandbox (exercises/runner.py)."""
    return hasattr(type(fn), "_learner_call")


def _snapshot(value):
    """A deep copy of the arrays and tensors in ``value`` (nested in lists, tuples, dicts)."""
    if hasattr(value, "detach") and hasattr(value, "clone"):
        return ("tensor", value.detach().clone())
    if isinstance(value, np.ndarray):
        return ("array", value.copy())
    if isinstance(value, list | tuple):
        return ("seq", [_snapshot(v) for v in value])
    if isinstance(value, dict):
        return ("dict", {k: _snapshot(v) for k, v in value.items()})
    return ("other", None)


def _unchanged(before, value) -> bool:
    kind, saved = before
    if kind == "tensor":
        import torch

        return tuple(value.shape) == tuple(saved.shape) and torch.allclose(
            value.detach(), saved, rtol=0, atol=0, equal_nan=True)
    if kind == "array":
        return value.shape == saved.shape and np.array_equal(value, saved, equal_nan=True)
    if kind == "seq":
        return len(value) == len(saved) and all(
            _unchanged(b, v) for b, v in zip(saved, value, strict=False))
    if kind == "dict":
        return set(value) == set(saved) and all(_unchanged(saved[k], value[k]) for k in saved)
    return True


CHANGED_INPUT = ("changed its input in place (for example `x -= ...` or `.mul_()` on an "
                 "argument); leave the inputs as they are and compute new arrays instead")


def _learner_failure(err: BaseException, what: str) -> AssertionError:
    """An AssertionError in words for an exception raised by the learner's code."""
    if type(err).__name__ == "InputChanged":
        return AssertionError(f"{what} {CHANGED_INPUT}.")
    name = getattr(err, "type_name", type(err).__name__)
    message = getattr(err, "message", str(err))
    if FORBIDDEN in message:
        return AssertionError(f"{what} called mixer_ref ({message}). Write it with NumPy, "
                              "JAX or PyTorch operations instead.")
    return AssertionError(f"{what} raised {name}: {message}")


def call_learner(fn, *args, what: str, **kwargs):
    """Calls the learner's ``fn`` with mixer_ref disabled; explains any exception.

    When grading, ``fn`` lives in a sandbox that cannot import mixer_ref at all; in the
    learner's own notebook every mixer_ref function and model raises instead. Either way an
    argument changed in place fails the call.
    """
    if fn is None:
        raise AssertionError(f"{what}: the name is not defined; run the cell that defines it.")
    try:
        if _is_remote(fn):
            return fn._learner_call(args, kwargs)
        before = _snapshot((args, kwargs))
        with no_mixer_ref():
            out = fn(*args, **kwargs)
        if not _unchanged(before, (args, kwargs)):
            raise AssertionError(f"{what} {CHANGED_INPUT}.")
        return out
    except AssertionError:
        raise
    except KeyboardInterrupt:
        raise
    except Exception as err:  # the learner's bug, reported in words
        raise _learner_failure(err, what) from None
    except BaseException as err:  # SystemExit and friends from the learner's code
        if type(err).__name__ == "SandboxGone":
            raise
        raise _learner_failure(err, what) from None


def expect_raises(fn, *args, error=ValueError, what: str, why: str) -> str:
    """Asserts that the learner's ``fn(*args)`` raises ``error``; returns its message."""
    try:
        if _is_remote(fn):
            fn._learner_call(args, {})
        else:
            with no_mixer_ref():
                fn(*args)
    except error as err:
        return str(err)
    except KeyboardInterrupt:
        raise
    except BaseException as err:
        if type(err).__name__ == "SandboxGone":
            raise
        if error.__name__ in getattr(err, "mro", ()):
            return err.message
        failure = _learner_failure(err, what)
        raise AssertionError(f"{failure}; expected a {error.__name__} because {why}.") from None
    raise AssertionError(f"{what} returned without an error; expected a {error.__name__} "
                         f"because {why}.")


def in_learner_space(expr: str, like, source: str = "", **names):
    """Evaluates ``expr`` where the learner's code runs (its sandbox when grading).

    Use it for objects that the learner's code must call itself, such as an optax
    optimizer or a model function that ``jax.grad`` traces: ``names`` (data or the learner's
    own objects) and ``jax``, ``jnp``, ``np``, ``optax``, ``torch`` are in scope, and
    ``source`` (statements, e.g. a ``def``) runs first.
    """
    if _is_remote(like):
        return like._learner_eval(expr, source, **names)
    import jax
    import jax.numpy as jnp
    import optax
    import torch

    namespace = {"jax": jax, "jnp": jnp, "np": np, "optax": optax, "torch": torch, **names}
    if source:
        exec(compile(source, "<grader>", "exec"), namespace)
    return eval(compile(expr, "<grader>", "eval"), namespace)


def _library_file(filename: str) -> bool:
    return (filename.startswith(("<frozen", sys.prefix, sys.base_prefix, sys.exec_prefix))
            or filename == __file__)


def learner_lines(fn, *args, what: str) -> int:
    """How many lines of the learner's own code one call executes (loops make it grow)."""
    if _is_remote(fn):
        try:
            _, lines, kept = fn._learner_call(args, {}, count_lines=True)
        except BaseException as err:
            if type(err).__name__ == "SandboxGone" or isinstance(err, KeyboardInterrupt):
                raise
            raise _learner_failure(err, what) from None
    else:
        count = [0]

        def local(frame, event, arg):
            if event == "line":
                count[0] += 1
            return local

        def outer(frame, event, arg):
            return None if _library_file(frame.f_code.co_filename) else local

        sys.settrace(outer)
        try:
            with no_mixer_ref():
                fn(*args)
        except Exception as err:
            raise _learner_failure(err, what) from None
        finally:
            kept = sys.gettrace() is outer
            sys.settrace(None)
        lines = count[0]
    if not kept:
        raise AssertionError(f"{what} switched off Python's line tracing, which the grader "
                             "uses to check for loops.")
    return lines


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

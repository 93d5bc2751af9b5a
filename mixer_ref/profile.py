"""Execution profiles for notebooks and scripts: ``smoke``, ``cpu`` and ``accelerator``.

``smoke`` keeps every notebook under a minute on a 2-core CPU (CI); ``cpu`` is a fuller run
on a laptop; ``accelerator`` is the real run on a Colab TPU chip or a GPU. The environment
variable ``MIXER_PROFILE`` overrides the default, which is ``accelerator`` when JAX sees a
TPU or GPU and ``cpu`` otherwise.
"""

from __future__ import annotations

import os

PROFILES = ("smoke", "cpu", "accelerator")


def get_profile() -> str:
    """The active profile name."""
    name = os.environ.get("MIXER_PROFILE")
    if name is not None:
        if name not in PROFILES:
            raise ValueError(f"MIXER_PROFILE must be one of {PROFILES}, got {name!r}.")
        return name
    import jax

    return "cpu" if jax.default_backend() == "cpu" else "accelerator"

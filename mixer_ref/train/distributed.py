"""Processes, the device mesh and shardings for data parallelism.

One code path for one device, many devices and many processes: a 1-D mesh named ``"data"``
over every device in the job, the batch split along it, parameters and optimizer state
replicated. XLA inserts the gradient all-reduce.

Multi-process start-up (:func:`initialize`): explicit ``--coordinator_address``,
``--num_processes`` and ``--process_id`` win. Without them, ``jax.distributed.initialize()``
is called with no arguments (JAX's own cluster detection) only when the environment says
the job spans several hosts: ``SLURM_NTASKS`` > 1, or a TPU pod slice with several workers
(``TPU_WORKER_HOSTNAMES`` or ``MEGASCALE_COORDINATOR_ADDRESS``). Otherwise the run is a
single process.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def cluster_hint() -> bool:
    """Whether the environment announces a multi-host job that JAX can auto-detect."""
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return True
    if "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""):
        return True
    return "MEGASCALE_COORDINATOR_ADDRESS" in os.environ


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Starts JAX's distributed runtime when the run spans several processes."""
    given = [coordinator_address, num_processes, process_id]
    if any(v is not None for v in given):
        if any(v is None for v in given):
            raise ValueError("Give all of --coordinator_address, --num_processes and "
                             f"--process_id, or none; got {given}.")
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    elif cluster_hint():
        jax.distributed.initialize()


def make_mesh() -> Mesh:
    """A 1-D data-parallel mesh over every device of every process."""
    return Mesh(np.array(jax.devices()), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Splits the leading (batch) axis over the devices."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def replicate(tree, mesh: Mesh):
    """Places every array of ``tree`` (identical on every process) on every device."""
    sharding = replicated(mesh)

    def put(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(x)),
                                            impl=jax.random.key_impl(x))
        return jax.make_array_from_process_local_data(sharding, np.asarray(x), x.shape)

    return jax.tree.map(put, tree)


def is_primary() -> bool:
    """Process 0 writes logs and files that are not checkpoints."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process reaches this point (a no-op for one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)

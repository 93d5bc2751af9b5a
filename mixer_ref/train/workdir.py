"""The workdir: one path layer, atomic writes, one run at a time, and the resume check.

Every workdir path goes through :func:`path`, which gives an ``etils.epath.Path`` (the
path layer Orbax uses): ``gs://bucket/run`` through epath's GCS backend, ``file:///abs``
and plain paths as absolute local paths. A workdir holds:

* ``config.json``, the :class:`~mixer_ref.train.recipes.TrainConfig` (usable as
  ``--config``), and ``model.json``, the resolved model config;
* ``metrics.jsonl``, one JSON record per line (``mixer_ref.train.metrics``);
* ``checkpoints/<step>/`` (Orbax, ``mixer_ref.train.checkpointing``);
* ``lock.json`` while a run trains in it (:class:`WorkdirLock`);
* ``config.step<N>.json``: the config that trained up to step N, kept when a resume
  changed hyperparameters (:func:`check_resume`);
* ``damaged_checkpoints/<step>/``: checkpoints that could not be restored, set aside.

Files are replaced whole (:func:`write_atomic`): locally a temporary file then
``os.replace``; on GCS an object appears only once its upload completes.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import socket
import urllib.parse
import urllib.request
from typing import Any

from etils import epath

from mixer_ref.configs import Config, MixerConfig, ResMLPConfig

CONFIG_FILE = "config.json"
MODEL_FILE = "model.json"
LOCK_FILE = "lock.json"

# Keys that change what is logged and saved, not what is trained: free to change on resume.
BOOKKEEPING_KEYS = frozenset({"log_every", "eval_every", "checkpoint_every",
                              "eval_batch_size", "data.root"})
# Keys that change the parameter tree: a resume can never change them.
ARCHITECTURE_KEYS = frozenset({"model.name", "model.image_size", "model.pretrained"})


class WorkdirError(RuntimeError):
    """The workdir cannot be used for this run (see the message)."""


class WorkdirLocked(WorkdirError):
    """Another live run holds the workdir's lock."""


class ConfigMismatch(WorkdirError, ValueError):
    """The config differs from the one the workdir was trained with."""


def path(workdir: str | os.PathLike) -> epath.Path:
    """``workdir`` as an ``epath.Path``: URLs through their backend, ``file://`` URLs and
    plain paths as absolute local paths."""
    text = os.fspath(workdir)
    if text.startswith("file://"):
        url = urllib.parse.urlparse(text)
        if url.netloc not in ("", "localhost"):
            raise ValueError(f"Expected a local file:// URL (file:///absolute/path), got "
                             f"{text!r} with host {url.netloc!r}.")
        text = urllib.request.url2pathname(url.path)
    if "://" in text:
        return epath.Path(text)
    return epath.Path(os.path.abspath(os.path.expanduser(text)))


def is_local(file: epath.Path) -> bool:
    return "://" not in os.fspath(file)


def write_atomic(file: epath.Path, data: str | bytes) -> None:
    """Replaces ``file`` by ``data`` whole: a reader sees the old or the new file, never a
    part. Locally through a temporary file in the same directory, fsync and ``os.replace``."""
    data = data.encode() if isinstance(data, str) else data
    if not is_local(file):
        file.write_bytes(data)  # an object store publishes an object only when complete
        return
    tmp = file.with_name(f".{file.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, file)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# --- one run per workdir -----------------------------------------------------------------


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class WorkdirLock:
    """``lock.json`` with the pid and host of the run training in the workdir.

    :meth:`acquire` refuses (:class:`WorkdirLocked`) while another live run holds it, and
    takes over a stale lock (a dead pid on this host) with a message. A lock from another
    host cannot be checked: delete ``lock.json`` by hand once that run is gone. Locally the
    file is created atomically (``os.link``); on GCS, check and creation are two requests.
    """

    def __init__(self, workdir: str | os.PathLike):
        self.workdir = os.fspath(workdir)
        self.file = path(workdir) / LOCK_FILE
        self.record = {"pid": os.getpid(), "host": socket.gethostname()}
        self.held = False

    def acquire(self) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        record = {**self.record, "since": datetime.datetime.now(datetime.UTC).isoformat(
            timespec="seconds")}
        for _ in range(3):
            if self._create(record):
                self.held = True
                return
            holder = self._read()
            if holder is None:
                continue  # released meanwhile
            pid, host = holder.get("pid"), holder.get("host")
            if host != self.record["host"] or not isinstance(pid, int) or _alive(pid):
                raise WorkdirLocked(
                    f"{self.workdir} is in use by another run (pid {pid} on host {host}, "
                    f"since {holder.get('since')}; {self.file}). Wait for it to finish, or "
                    f"stop it; use another --workdir for a separate run. If that run is "
                    f"gone, delete {self.file}.")
            print(f"Taking over the stale lock of {self.workdir}: pid {pid} on {host} is no "
                  "longer running.", flush=True)
            self.file.unlink(missing_ok=True)
        raise WorkdirLocked(f"Could not take the lock {self.file}: it keeps changing.")

    def _create(self, record: dict[str, Any]) -> bool:
        """Creates the lock file with ``record``; False if it exists."""
        data = json.dumps(record)
        if not is_local(self.file):
            if self.file.exists():
                return False
            self.file.write_text(data)
            return True
        tmp = self.file.with_name(f".{LOCK_FILE}.{os.getpid()}")
        tmp.write_text(data)
        try:
            os.link(tmp, self.file)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def _read(self) -> dict[str, Any] | None:
        try:
            holder = json.loads(self.file.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            holder = {}  # unreadable: reported with unknown pid and host
        return holder if isinstance(holder, dict) else {}

    def release(self) -> None:
        if self.held:
            holder = self._read()
            if holder and holder.get("pid") == self.record["pid"] and (
                    holder.get("host") == self.record["host"]):
                self.file.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> WorkdirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# --- config.json and model.json ------------------------------------------------------------


def write_configs(workdir: str, train_config, model_config: Config) -> None:
    """Writes ``config.json`` and ``model.json`` atomically."""
    directory = path(workdir)
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / CONFIG_FILE,
                 json.dumps(dataclasses.asdict(train_config), indent=2))
    model = {"family": model_config.family, **dataclasses.asdict(model_config)}
    write_atomic(directory / MODEL_FILE, json.dumps(model, indent=2))


def _read_json(file: epath.Path) -> dict[str, Any]:
    try:
        fields = json.loads(file.read_text())
    except ValueError as error:
        raise ValueError(f"{file} is not valid JSON ({error}); expected a file written by "
                         "mixer_ref.train.") from None
    if not isinstance(fields, dict):
        raise ValueError(f"{file} holds a JSON {type(fields).__name__}; expected an object.")
    return fields


def read_model_config(workdir: str) -> Config:
    """The model config stored in ``workdir/model.json``."""
    file = path(workdir) / MODEL_FILE
    if not file.exists():
        raise FileNotFoundError(f"No model.json in {workdir!r}: expected a training workdir "
                                "written by mixer_ref.train.")
    fields = _read_json(file)
    family = fields.pop("family", None)
    classes = {"mixer": MixerConfig, "resmlp": ResMLPConfig}
    if family not in classes:
        raise ValueError(f"{file}: family must be one of {tuple(classes)}, got {family!r}.")
    try:
        return classes[family](**fields)
    except TypeError as error:
        raise ValueError(f"{file} does not describe a {family} model: {error}.") from None


def read_config(workdir: str):
    """The ``TrainConfig`` of ``workdir/config.json``, or None if there is none."""
    from mixer_ref.train import recipes

    file = path(workdir) / CONFIG_FILE
    if not file.exists():
        return None
    try:
        return recipes.from_dict(_read_json(file))
    except ValueError as error:
        raise ValueError(f"{file}: {error}") from None


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def config_changes(old, new) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (old, new)}`` for every field that differs between two configs."""
    a, b = _flat(dataclasses.asdict(old)), _flat(dataclasses.asdict(new))
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys())
            if a.get(k) != b.get(k)}


def _listing(changes: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())


def check_resume(workdir: str, config, allow_config_change: bool
                 ) -> dict[str, tuple[Any, Any]]:
    """Compares ``config`` with the workdir's ``config.json``; returns the changes.

    A changed architecture (:data:`ARCHITECTURE_KEYS`) is refused; a changed
    hyperparameter too, unless ``allow_config_change``. Logging and checkpoint intervals
    (:data:`BOOKKEEPING_KEYS`) may change freely. Nothing is written here.
    """
    previous = read_config(workdir)
    if previous is None:
        return {}
    changes = config_changes(previous, config)
    architecture = {k: v for k, v in changes.items() if k in ARCHITECTURE_KEYS}
    if architecture:
        raise ConfigMismatch(
            f"{workdir} was trained with another architecture ({_listing(architecture)}). "
            "A resume cannot change the architecture: use a new --workdir, or fine-tune "
            f"from this one with model.pretrained={workdir}.")
    hyper = {k: v for k, v in changes.items() if k not in BOOKKEEPING_KEYS}
    if hyper and not allow_config_change:
        raise ConfigMismatch(
            f"{workdir} was trained with other settings ({_listing(hyper)}). To resume with "
            "the new ones, pass --allow_config_change (fit(..., allow_config_change=True)); "
            "the change is logged in metrics.jsonl and the previous config is kept. To "
            "resume as before, drop the changed --set options; for a new run, use a new "
            "--workdir.")
    return changes


def check_model(workdir: str, model_config: Config) -> None:
    """Refuses a model whose parameter tree differs from the workdir's ``model.json``."""
    file = path(workdir) / MODEL_FILE
    if not file.exists():
        return
    old = read_model_config(workdir)
    regularisers = {"dropout": model_config.dropout, "stoch_depth": model_config.stoch_depth}
    if (old.family != model_config.family
            or dataclasses.replace(old, **regularisers) != model_config):
        raise ConfigMismatch(
            f"{workdir} holds a model {old} but this run builds {model_config} (a dataset "
            "with another number of classes?). A resume cannot change the architecture: use "
            "a new --workdir.")


def keep_previous_config(workdir: str, step: int) -> str:
    """Copies ``config.json`` to a free ``config.step<step>[.k].json``; returns its name."""
    directory = path(workdir)
    name, k = f"config.step{step}.json", 1
    while (directory / name).exists():
        name, k = f"config.step{step}.{k}.json", k + 1
    write_atomic(directory / name, (directory / CONFIG_FILE).read_bytes())
    return name

"""The grader's wire format: values that cross between the test runner and a learner's sandbox.

Only data crosses: ``None``, booleans, numbers, strings, lists, tuples, dicts, NumPy arrays
and scalars, JAX arrays and PyTorch tensors (with ``requires_grad`` and whether the tensor is
an ``nn.Parameter``). A value of any other type stays on its side and crosses as a *handle*,
a number that only the side holding the object can resolve. Nothing is pickled, so a
message from the learner's side can never run code on the test runner's side.

A message is a frame: an 8-byte length, then a JSON header, then the raw bytes of its arrays.
Arrays are rebuilt with ``np.frombuffer`` from a checked dtype (booleans, integers, floats,
complex numbers only) and shape.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import struct
import time
import types
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_FRAME = 512 * 2**20  # bytes; a bigger frame from the sandbox is treated as an attack
MAX_STRING = 4000  # characters kept of a string coming back from learner code
ARRAY_KINDS = "biufc"


class WireError(RuntimeError):
    """A malformed or oversized message, or a peer that went away."""


class Record(types.SimpleNamespace):
    """A dataclass instance (such as a model config) as plain, read-only fields.

    Its properties (``config.num_tokens``) are computed by the sender and sent as fields.
    """

    def __init__(self, kind: str, fields: dict):
        super().__init__(**fields)
        object.__setattr__(self, "_kind", kind)

    def __setattr__(self, name, value):
        raise AttributeError(f"{self._kind} is read-only")

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "_kind")
        return f"{self._kind}({fields})"


@dataclass(frozen=True)
class Handle:
    """An object that stays on the other side, named by its number there."""

    number: int


def _framework(x) -> str | None:
    module = type(x).__module__.split(".")[0]
    if module == "torch" and hasattr(x, "detach") and hasattr(x, "requires_grad"):
        return "torch"
    if module in ("jax", "jaxlib") and hasattr(x, "shape") and hasattr(x, "dtype"):
        return "jax"
    return None


class Encoder:
    """Turns a value into a JSON-able tree plus a list of array buffers.

    ``keep`` is called with any object that is not data and must return its handle number.
    """

    def __init__(self, keep):
        self.keep = keep
        self.arrays: list[np.ndarray] = []

    def _array(self, arr: np.ndarray, **tags) -> dict:
        arr = np.array(arr, order="C", copy=True)  # (ascontiguousarray would make 0-d 1-d)
        if arr.dtype.kind not in ARRAY_KINDS:
            raise TypeError(f"arrays of dtype {arr.dtype} cannot be sent")
        self.arrays.append(arr)
        return {"$array": len(self.arrays) - 1, "dtype": arr.dtype.str,
                "shape": list(arr.shape), **tags}

    def encode(self, x, depth: int = 0):
        if depth > 50:
            raise TypeError("value nested more than 50 levels deep")
        if x is None or type(x) in (bool, str):
            return x
        if type(x) is int:
            return x if abs(x) < 2**53 else {"$bigint": str(x)}
        if type(x) is float:
            return {"$float": repr(x)}
        if type(x) is complex:
            return {"$complex": [x.real, x.imag]}
        if type(x) in (list, tuple):
            items = [self.encode(v, depth + 1) for v in x]
            return items if type(x) is list else {"$tuple": items}
        if type(x) is dict or type(x).__name__ == "OrderedDict" and type(x).__module__ in (
                "collections", "typing"):
            pairs = []
            for key, value in x.items():
                if type(key) not in (str, int):
                    raise TypeError(f"dict keys must be str or int, got {type(key).__name__}")
                pairs.append([key, self.encode(value, depth + 1)])
            return {"$dict": pairs}
        if isinstance(x, Handle):
            return {"$handle": x.number}
        if type(x) is np.ndarray:
            return self._array(x, kind="np")
        if isinstance(x, np.generic) and type(x).__module__ == "numpy":
            return self._array(np.asarray(x), kind="npscalar")
        framework = _framework(x)
        if framework == "torch":
            import torch

            if x.dtype in (torch.bfloat16,) or x.is_sparse or x.device.type == "meta":
                return {"$handle": self.keep(x)}
            arr = x.detach().cpu().resolve_conj().resolve_neg().numpy()
            return self._array(arr, kind="torch", grad=bool(x.requires_grad),
                               param=isinstance(x, torch.nn.Parameter))
        if framework == "jax":
            try:
                arr = np.asarray(x)
            except Exception:  # a tracer or an abstract value: keep it where it is
                return {"$handle": self.keep(x)}
            if arr.dtype.kind not in ARRAY_KINDS:
                return {"$handle": self.keep(x)}
            return self._array(arr, kind="jax")
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            fields = {f.name: getattr(x, f.name) for f in dataclasses.fields(x)}
            for name, attr in vars(type(x)).items():
                if isinstance(attr, property) and not name.startswith("_"):
                    fields[name] = getattr(x, name)
            return {"$record": [type(x).__name__,
                                [[k, self.encode(v, depth + 1)] for k, v in fields.items()]]}
        if isinstance(x, Record):
            fields = {k: v for k, v in vars(x).items() if k != "_kind"}
            return {"$record": [x._kind, [[k, self.encode(v, depth + 1)]
                                          for k, v in fields.items()]]}
        if isinstance(x, types.GeneratorType):
            return self.encode(list(x), depth)
        return {"$handle": self.keep(x)}


class Decoder:
    """Rebuilds values from a tree and its array buffers; ``resolve`` turns a handle number
    into an object (on the side that holds it) or a proxy (on the other side)."""

    def __init__(self, arrays: list[np.ndarray], resolve):
        self.arrays = arrays
        self.resolve = resolve

    def _array(self, node: dict):
        index = node["$array"]
        if type(index) is not int or not 0 <= index < len(self.arrays):
            raise WireError("bad array index")
        arr = self.arrays[index]
        kind = node.get("kind")
        if kind == "np":
            return arr
        if kind == "npscalar":
            return arr[()]
        if kind == "jax":
            import jax.numpy as jnp

            return jnp.asarray(arr)
        if kind == "torch":
            import torch

            tensor = torch.from_numpy(arr.copy())
            if node.get("param"):
                return torch.nn.Parameter(tensor, requires_grad=bool(node.get("grad")))
            return tensor.requires_grad_(bool(node.get("grad")) and tensor.is_floating_point())
        raise WireError(f"unknown array kind {kind!r}")

    def decode(self, node, depth: int = 0):
        if depth > 60:
            raise WireError("value nested too deeply")
        if node is None or type(node) in (bool, int, str):
            return node[:MAX_STRING] if type(node) is str else node
        if type(node) is float:
            return node
        if type(node) is list:
            return [self.decode(v, depth + 1) for v in node]
        if type(node) is not dict or len(node) == 0:
            raise WireError(f"unexpected node {type(node).__name__}")
        if "$array" in node:
            return self._array(node)
        (key, value), *_ = node.items()
        if key == "$float":
            return float(value)
        if key == "$bigint":
            return int(value)
        if key == "$complex":
            return complex(float(value[0]), float(value[1]))
        if key == "$tuple":
            return tuple(self.decode(v, depth + 1) for v in value)
        if key == "$dict":
            out = {}
            for pair in value:
                k, v = pair
                if type(k) not in (str, int):
                    raise WireError("bad dict key")
                out[k] = self.decode(v, depth + 1)
            return out
        if key == "$record":
            kind, pairs = value
            fields = {}
            for k, v in pairs:
                if type(k) is not str or k.startswith("_"):
                    raise WireError("bad record field")
                fields[k] = self.decode(v, depth + 1)
            return Record(str(kind)[:100], fields)
        if key == "$handle":
            if type(value) is not int:
                raise WireError("bad handle")
            return self.resolve(value)
        raise WireError(f"unknown node {key!r}")


def pack(message: dict, encoder: Encoder) -> bytes:
    """One frame: the JSON header (``message``, already encoded) and the encoder's arrays."""
    header = json.dumps({"message": message,
                         "arrays": [[a.dtype.str, list(a.shape), a.nbytes]
                                    for a in encoder.arrays]}).encode()
    body = b"".join([struct.pack("<Q", len(header)), header,
                     *(a.tobytes() for a in encoder.arrays)])
    return struct.pack("<Q", len(body)) + body


def _recv_exactly(sock: socket.socket, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no complete message before the deadline")
            sock.settimeout(left)
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise WireError("the other side closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def send(sock: socket.socket, message: dict, encoder: Encoder) -> None:
    sock.sendall(pack(message, encoder))


def receive(sock: socket.socket, deadline: float | None = None
            ) -> tuple[Any, list[np.ndarray]]:
    """Reads one frame; returns (message tree, arrays). Raises WireError if it is malformed,
    TimeoutError if the whole frame has not arrived by ``deadline`` (``time.monotonic``)."""
    (size,) = struct.unpack("<Q", _recv_exactly(sock, 8, deadline))
    if size > MAX_FRAME:
        raise WireError(f"a message of {size} bytes is over the limit of {MAX_FRAME}")
    body = _recv_exactly(sock, size, deadline)
    try:
        (header_size,) = struct.unpack("<Q", body[:8])
        header = json.loads(body[8:8 + header_size])
        offset, arrays = 8 + header_size, []
        for dtype, shape, nbytes in header["arrays"]:
            dt = np.dtype(dtype)
            if dt.kind not in ARRAY_KINDS or dt.hasobject:
                raise WireError(f"refused array dtype {dtype!r}")
            shape = tuple(int(s) for s in shape)
            if int(np.prod(shape, dtype=np.int64)) * dt.itemsize != nbytes:
                raise WireError("array size does not match its shape")
            arrays.append(np.frombuffer(body, dt, count=int(np.prod(shape, dtype=np.int64)),
                                        offset=offset).reshape(shape).copy())
            offset += nbytes
        if offset != len(body):
            raise WireError("trailing bytes in a message")
        return header["message"], arrays
    except WireError:
        raise
    except Exception as err:  # anything malformed in a frame is the sender's fault
        raise WireError(f"malformed message: {type(err).__name__}: {err}") from None

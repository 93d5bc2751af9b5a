"""Downloading an archive: primary URL then mirrors, resume, checksum, atomic placement.

A download streams into ``<file>.part`` next to its destination. An interrupted transfer
leaves the ``.part`` file behind and the next attempt resumes it with an HTTP ``Range``
request (starting over if the server ignores the range). Only a file whose digest matches
the pinned checksum is moved into place, with an atomic ``os.replace``; a mismatching file is
deleted. Standard library only (``urllib``).

Bounds: a transfer never writes past the pinned ``size`` (a server announcing or sending
more is cut off and its bytes deleted), each read waits at most :data:`TIMEOUT` seconds,
and each URL has an overall deadline (:func:`default_deadline`, or ``fetch(deadline=)``),
so a server that drips bytes just under the read timeout still ends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

ALGORITHMS = ("sha256", "md5")
CHUNK = 1 << 20
TIMEOUT = 60.0  # seconds per read
MIN_DEADLINE = 600.0  # seconds per URL, at least
MIN_RATE = 100 * 1024  # bytes/s: slower transfers of a sized file miss their deadline
USER_AGENT = "mixer_ref-data/0.1 (Python urllib)"


class DownloadError(RuntimeError):
    """No URL gave a complete file with the expected checksum."""


class ChecksumError(DownloadError):
    """A file's digest differs from its pinned checksum."""


class SizeError(DownloadError):
    """A server announced or sent more bytes than the pinned size."""


@dataclasses.dataclass(frozen=True)
class Remote:
    """One file to fetch.

    ``urls`` are tried in order (the primary first, then mirrors). ``checksum`` is
    ``"<algorithm>:<hex digest>"`` with the algorithm one of :data:`ALGORITHMS`; ``size`` is
    the length in bytes, when known.
    """

    filename: str
    urls: tuple[str, ...]
    checksum: str
    size: int | None = None

    def __post_init__(self) -> None:
        algorithm, _, digest = self.checksum.partition(":")
        if algorithm not in ALGORITHMS or not digest:
            raise ValueError(f"{self.filename}: checksum must look like 'sha256:<hex>' or "
                             f"'md5:<hex>', got {self.checksum!r}.")
        if not self.urls:
            raise ValueError(f"{self.filename}: expected at least one URL.")


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of the file at ``path``."""
    with open(path, "rb") as f:
        return hashlib.file_digest(
            f, lambda: hashlib.new(algorithm, usedforsecurity=False)).hexdigest()


def verify(path: Path, remote: Remote) -> None:
    """Raises :class:`ChecksumError` unless ``path`` has ``remote``'s digest."""
    algorithm, expected = remote.checksum.split(":")
    actual = file_digest(path, algorithm)
    if actual != expected.lower():
        raise ChecksumError(f"Checksum mismatch for {remote.filename} ({path}): expected "
                            f"{algorithm} {expected}, got {actual}.")


def default_deadline(size: int | None) -> float:
    """Seconds allowed for one URL's transfer: :data:`MIN_DEADLINE`, or longer for a file of
    known ``size`` at :data:`MIN_RATE`."""
    return max(MIN_DEADLINE, (size or 0) / MIN_RATE)


def fetch(remote: Remote, directory: Path, download: bool = True, *,
          deadline: float | None = None) -> Path:
    """Returns the path of ``remote`` in ``directory``, verified, downloading it if missing.

    A file already in place is verified but never deleted: on a mismatch, remove it by hand.
    Each URL gets ``deadline`` seconds (default: :func:`default_deadline` of the size).
    """
    if deadline is None:
        deadline = default_deadline(remote.size)
    if not deadline > 0:
        raise ValueError(f"deadline must be a positive number of seconds, got {deadline!r}.")
    path = directory / remote.filename
    if path.exists():
        try:
            verify(path, remote)
        except ChecksumError as error:
            raise ChecksumError(f"{error} Delete the file to download it again.") from None
        return path
    if not download:
        raise FileNotFoundError(f"{path} is missing and download=False. Download it from "
                                f"{remote.urls[0]} (or a mirror: {', '.join(remote.urls[1:])}).")
    directory.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    failures, mismatches = [], 0
    for url in remote.urls:
        try:
            _stream(url, part, remote.size, time.monotonic() + deadline)
            verify(part, remote)
        except ChecksumError as error:
            part.unlink(missing_ok=True)
            failures.append(f"  {url}: {error} The download was deleted.")
            mismatches += 1
        except SizeError as error:
            part.unlink(missing_ok=True)
            failures.append(f"  {url}: {error} The download was deleted.")
        except (DownloadError, OSError, http.client.HTTPException) as error:
            # URLError and timeouts are OSErrors. The .part file stays for the next URL.
            failures.append(f"  {url}: {error}")
        else:
            os.replace(part, path)
            return path
    cls = ChecksumError if mismatches == len(remote.urls) else DownloadError
    raise cls(f"Could not download {remote.filename} ({remote.checksum}) into {directory}:\n"
              + "\n".join(failures))


def _open(url: str, offset: int, timeout: float) -> tuple[http.client.HTTPResponse, int]:
    """Opens ``url`` from byte ``offset``; returns the response and the offset it starts at."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # the partial file is no prefix of this file
            return _open(url, 0, timeout)
        raise
    if offset and response.status != 206:  # the server ignored the range: start over
        return response, 0
    if offset and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
        response.close()
        raise DownloadError(f"asked for bytes from {offset}, got Content-Range "
                            f"{response.headers.get('Content-Range')!r}")
    return response, offset


def _stream(url: str, part: Path, size: int | None, deadline: float) -> None:
    """Downloads ``url`` into ``part``, resuming from its current length, writing at most
    ``size`` bytes in all and giving up at ``deadline`` (``time.monotonic()``)."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset == size:
        return  # complete from an earlier attempt; the checksum decides
    if size is not None and offset > size:
        offset = 0
    response, offset = _open(url, offset, min(TIMEOUT, max(deadline - time.monotonic(), 1.0)))
    with response:
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else size
        if size is not None and total is not None and total > size:
            raise SizeError(f"the server announces {total} bytes, more than the pinned size "
                            f"of {size} bytes")
        with (open(part, "ab" if offset else "wb") as f,
              tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=part.name.removesuffix(".part"), disable=None) as bar):
            written = offset
            while chunk := response.read1(CHUNK):  # whatever arrived: no waiting for a full chunk
                if size is not None and written + len(chunk) > size:
                    raise SizeError(f"the server sent more than the pinned size of {size} "
                                    "bytes")
                f.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
                if time.monotonic() > deadline:
                    raise DownloadError(
                        f"the transfer missed its deadline after {written} bytes; "
                        f"{part.name} is kept and the next attempt resumes it")
    received = part.stat().st_size
    if total is not None and received < total:
        raise DownloadError(f"the transfer stopped after {received} of {total} bytes; "
                            f"{part.name} is kept and the next attempt resumes it")

"""Downloading an archive: primary URL then mirrors, resume, checksum, atomic placement.

A download streams into ``<file>.part`` next to its destination. An interrupted transfer
leaves the ``.part`` file behind and the next attempt resumes it with an HTTP ``Range``
request (starting over if the server ignores the range). Only a file whose digest matches
the pinned checksum is moved into place, with an atomic ``os.replace``; a mismatching file is
deleted. Standard library only (``urllib``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

ALGORITHMS = ("sha256", "md5")
CHUNK = 1 << 20
TIMEOUT = 60.0
USER_AGENT = "mixer_ref-data/0.1 (Python urllib)"


class DownloadError(RuntimeError):
    """No URL gave a complete file with the expected checksum."""


class ChecksumError(DownloadError):
    """A file's digest differs from its pinned checksum."""


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


def fetch(remote: Remote, directory: Path, download: bool = True) -> Path:
    """Returns the path of ``remote`` in ``directory``, verified, downloading it if missing.

    A file already in place is verified but never deleted: on a mismatch, remove it by hand.
    """
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
            _stream(url, part, remote.size)
            verify(part, remote)
        except ChecksumError as error:
            part.unlink(missing_ok=True)
            failures.append(f"  {url}: {error} The download was deleted.")
            mismatches += 1
        except (DownloadError, OSError, http.client.HTTPException) as error:
            # URLError and timeouts are OSErrors. The .part file stays for the next URL.
            failures.append(f"  {url}: {error}")
        else:
            os.replace(part, path)
            return path
    cls = ChecksumError if mismatches == len(remote.urls) else DownloadError
    raise cls(f"Could not download {remote.filename} ({remote.checksum}) into {directory}:\n"
              + "\n".join(failures))


def _open(url: str, offset: int) -> tuple[http.client.HTTPResponse, int]:
    """Opens ``url`` from byte ``offset``; returns the response and the offset it starts at."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=TIMEOUT)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # the partial file is no prefix of this file
            return _open(url, 0)
        raise
    if offset and response.status != 206:  # the server ignored the range: start over
        return response, 0
    if offset and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
        response.close()
        raise DownloadError(f"asked for bytes from {offset}, got Content-Range "
                            f"{response.headers.get('Content-Range')!r}")
    return response, offset


def _stream(url: str, part: Path, size: int | None) -> None:
    """Downloads ``url`` into ``part``, resuming from its current length."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset == size:
        return  # complete from an earlier attempt; the checksum decides
    if size is not None and offset > size:
        offset = 0
    response, offset = _open(url, offset)
    with response:
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else size
        with (open(part, "ab" if offset else "wb") as f,
              tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=part.name.removesuffix(".part"), disable=None) as bar):
            while chunk := response.read(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
    received = part.stat().st_size
    if total is not None and received < total:
        raise DownloadError(f"the transfer stopped after {received} of {total} bytes; "
                            f"{part.name} is kept and the next attempt resumes it")

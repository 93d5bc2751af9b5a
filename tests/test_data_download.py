"""mixer_ref.data.download: mirrors, checksums, resume and caching, against a local server."""

import hashlib
import time

import numpy as np
import pytest
from data_fixtures import FileServer, cifar10_archive, serve_dataset, sha256

from mixer_ref import data
from mixer_ref.data.download import ChecksumError, DownloadError, Remote, fetch

PAYLOAD = bytes(range(256)) * 400  # 100 KiB


def _remote(server, paths, data_bytes=PAYLOAD, checksum=None, size=None):
    return Remote("archive.bin", tuple(server.url(p) for p in paths),
                  checksum or sha256(data_bytes), size)


def test_primary_first_then_the_mirror(tmp_path):
    with FileServer({"/mirror/archive.bin": PAYLOAD}) as server:
        path = fetch(_remote(server, ["/primary/archive.bin", "/mirror/archive.bin"]), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert [p for p, _ in server.requests] == ["/primary/archive.bin", "/mirror/archive.bin"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["archive.bin"]


def test_checksum_mismatch_names_file_and_digests_and_leaves_nothing(tmp_path):
    bad = PAYLOAD[:-1] + b"!"
    with FileServer({"/a/archive.bin": bad, "/b/archive.bin": bad}) as server:
        with pytest.raises(ChecksumError) as error:
            fetch(_remote(server, ["/a/archive.bin", "/b/archive.bin"]), tmp_path)
    message = str(error.value)
    assert "archive.bin" in message
    assert hashlib.sha256(PAYLOAD).hexdigest() in message  # expected
    assert hashlib.sha256(bad).hexdigest() in message  # actual
    assert "/a/archive.bin" in message and "/b/archive.bin" in message
    assert list(tmp_path.iterdir()) == []


def test_a_bad_primary_falls_back_to_a_good_mirror(tmp_path):
    with FileServer({"/a/archive.bin": b"<html>moved</html>", "/b/archive.bin": PAYLOAD}) as s:
        path = fetch(_remote(s, ["/a/archive.bin", "/b/archive.bin"]), tmp_path)
    assert path.read_bytes() == PAYLOAD


def test_md5_is_supported_where_that_is_what_is_published(tmp_path):
    md5 = "md5:" + hashlib.md5(PAYLOAD).hexdigest()
    with FileServer({"/archive.bin": PAYLOAD}) as server:
        assert fetch(_remote(server, ["/archive.bin"], checksum=md5), tmp_path).exists()
    with pytest.raises(ValueError, match="checksum must look like 'sha256:<hex>'"):
        Remote("x", ("http://127.0.0.1/x",), "crc32:1234")


def test_an_interrupted_download_resumes_from_its_part_file(tmp_path):
    half = len(PAYLOAD) // 2
    (tmp_path / "archive.bin.part").write_bytes(PAYLOAD[:half])
    with FileServer({"/archive.bin": PAYLOAD}) as server:
        path = fetch(_remote(server, ["/archive.bin"], size=len(PAYLOAD)), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("/archive.bin", f"bytes={half}-")]
    assert server.bytes_sent == len(PAYLOAD) - half
    assert not (tmp_path / "archive.bin.part").exists()


def test_a_server_that_ignores_range_restarts_the_download(tmp_path):
    (tmp_path / "archive.bin.part").write_bytes(PAYLOAD[:1000])
    with FileServer({"/archive.bin": PAYLOAD}, honour_range=False) as server:
        path = fetch(_remote(server, ["/archive.bin"]), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.bytes_sent == len(PAYLOAD)


def test_a_dropped_connection_keeps_the_part_file_for_the_next_try(tmp_path):
    remote_paths = ["/archive.bin"]
    with FileServer({"/archive.bin": PAYLOAD}) as server:
        server.drop_after["/archive.bin"] = 30_000
        with pytest.raises(DownloadError, match="stopped after 30000 of 102400 bytes"):
            fetch(_remote(server, remote_paths), tmp_path)
        assert (tmp_path / "archive.bin.part").stat().st_size == 30_000
        assert not (tmp_path / "archive.bin").exists()
        server.drop_after.clear()
        path = fetch(_remote(server, remote_paths), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/archive.bin", "bytes=30000-")


def test_a_file_in_place_is_verified_but_never_deleted(tmp_path):
    (tmp_path / "archive.bin").write_bytes(b"not it")
    with FileServer({}) as server:
        with pytest.raises(ChecksumError, match="Delete the file to download it again"):
            fetch(_remote(server, ["/archive.bin"]), tmp_path)
    assert (tmp_path / "archive.bin").read_bytes() == b"not it"
    assert server.requests == []


def test_download_false_never_touches_the_network(tmp_path):
    with FileServer({"/archive.bin": PAYLOAD}) as server:
        with pytest.raises(FileNotFoundError, match="download=False"):
            fetch(_remote(server, ["/archive.bin"]), tmp_path, download=False)
    assert server.requests == []


def test_loads_after_the_first_come_from_the_cache(monkeypatch, tmp_path):
    archive, expected = cifar10_archive()
    with FileServer({}) as server:
        serve_dataset(monkeypatch, server, "cifar10", {"cifar-10-binary.tar.gz": archive},
                      {"train": 20, "test": 6})
        first = data.load("cifar10", "test", root=tmp_path)
        requests = len(server.requests)
        assert requests == 2  # the primary's 404, then the mirror
        directory = tmp_path / "cifar10"
        assert sorted(f.name for f in directory.iterdir()) == [
            "cifar-10-binary.tar.gz", "test.npz", "train.npz"]
        again = data.load("cifar10", "train", root=tmp_path, download=False)
        (directory / "train.npz").unlink()  # the archive alone suffices, too
        rebuilt = data.load("cifar10", "train", root=tmp_path)
        (directory / "cifar-10-binary.tar.gz").unlink()  # and so does the cache
        cached = data.load("cifar10", "test", root=tmp_path, download=False)
        assert len(server.requests) == requests
    np.testing.assert_array_equal(first.images, expected["test"][0])
    np.testing.assert_array_equal(again.labels, expected["train"][1])
    np.testing.assert_array_equal(rebuilt.images, again.images)
    np.testing.assert_array_equal(cached.images, first.images)


def test_the_cache_is_rebuilt_when_the_pinned_archive_changes(monkeypatch, tmp_path):
    archive, _ = cifar10_archive(seed=0)
    other, expected = cifar10_archive(seed=1)
    with FileServer({}) as server:
        serve_dataset(monkeypatch, server, "cifar10", {"cifar-10-binary.tar.gz": archive},
                      {"train": 20, "test": 6})
        data.load("cifar10", "test", root=tmp_path)
        (tmp_path / "cifar10" / "cifar-10-binary.tar.gz").unlink()
        serve_dataset(monkeypatch, server, "cifar10", {"cifar-10-binary.tar.gz": other},
                      {"train": 20, "test": 6})
        ds = data.load("cifar10", "test", root=tmp_path)
    np.testing.assert_array_equal(ds.images, expected["test"][0])


def test_a_server_announcing_more_than_the_pinned_size_is_cut_off(tmp_path):
    bigger = PAYLOAD + bytes(1 << 20)
    with FileServer({"/archive.bin": bigger}) as server:
        with pytest.raises(DownloadError, match=f"announces {len(bigger)} bytes, more than "
                           f"the pinned size of {len(PAYLOAD)} bytes"):
            fetch(_remote(server, ["/archive.bin"], size=len(PAYLOAD)), tmp_path)
    assert list(tmp_path.iterdir()) == []


class RawServer:
    """Answers every GET with ``body`` after a 200 and no Content-Length (the end is the
    closed connection), sending ``step`` bytes every ``pause`` seconds."""

    def __init__(self, body: bytes, step: int, pause: float):
        import socketserver
        import threading

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                while self.rfile.readline().strip():
                    pass
                self.wfile.write(b"HTTP/1.0 200 OK\r\n\r\n")
                try:
                    for start in range(0, len(body), step):
                        self.wfile.write(body[start:start + step])
                        self.wfile.flush()
                        time.sleep(pause)
                except OSError:  # the client hung up
                    pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/archive.bin"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_a_server_sending_more_than_the_pinned_size_is_cut_off_at_it(tmp_path):
    with RawServer(PAYLOAD + bytes(1 << 22), step=1 << 16, pause=0) as server:
        remote = Remote("archive.bin", (server.url,), sha256(PAYLOAD), len(PAYLOAD))
        with pytest.raises(DownloadError, match="sent more than the pinned size of 102400"):
            fetch(remote, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_dripping_server_misses_the_overall_deadline(tmp_path):
    with RawServer(PAYLOAD, step=100, pause=0.05) as server:  # 2 KB/s, each read quick
        remote = Remote("archive.bin", (server.url,), sha256(PAYLOAD), len(PAYLOAD))
        start = time.monotonic()
        with pytest.raises(DownloadError, match="missed its deadline after \\d+ bytes"):
            fetch(remote, tmp_path, deadline=0.5)
        assert time.monotonic() - start < 5
    assert 0 < (tmp_path / "archive.bin.part").stat().st_size < len(PAYLOAD)  # resumable
    with pytest.raises(ValueError, match="deadline must be a positive number"):
        fetch(remote, tmp_path / "other", deadline=0)


def test_the_default_deadline_grows_with_the_pinned_size():
    from mixer_ref.data.download import MIN_DEADLINE, MIN_RATE, default_deadline

    assert default_deadline(None) == default_deadline(1000) == MIN_DEADLINE
    assert default_deadline(100 * MIN_RATE * 60) == 6000

"""Hostile inputs against the distribution layer: registry URLs, the registry server, pull, publish, packs.

Every case of the probe is one test (or one parametrized test) here: a malformed URL is one
``error:`` line, slow or unauthenticated clients cannot hold or fill the registry server,
an index cannot make pull download gigabytes, data past an archive's end is refused,
answers carry no server paths, and SIGTERM stops ``registry serve`` and ``pull`` cleanly.
One tiny artifact is built per module; everything else is archives, JSON and sockets on
127.0.0.1, every server stopped in a ``finally`` or by PID, every loop bounded.
"""

from __future__ import annotations

import gzip
import http.server
import io
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers.artifacts import MODEL, TOKEN, packed_tiny
from helpers.models import TARGET
from helpers.packs import index_entry, pack_members, registry_listing, repack

CLI = [str(Path(sys.executable).parent / "alexnet-tvm")]


@dataclass
class Dart:
    root: Path
    pack: Path
    #: the same artifact, signed with ``key``; ``pub`` is what ``pull --trust`` takes
    signed: Path
    pub: Path


@pytest.fixture(scope="module")
def dart(tmp_path_factory) -> Dart:
    from alexnet_tvm.distribution.signing import keygen

    root = tmp_path_factory.mktemp("hostile-dist")
    pub, _ = keygen(root / "keys" / "k")
    packed_tiny(root, {"model": None, "signed": root / "keys" / "k"})
    return Dart(root, root / "model.tar.gz", root / "signed.tar.gz", pub)


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """This process's temp folder, empty: whatever a command leaves behind shows up here."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


class _Event(logging.Handler):
    """Sets ``event`` when a record whose message contains ``text`` is logged; keeps every record."""

    def __init__(self, text: str):
        super().__init__(logging.DEBUG)
        self.text, self.event, self.records = text, threading.Event(), []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if self.text in record.getMessage():
            self.event.set()


@pytest.fixture
def server_log():
    """``server_log(text) -> _Event`` on the registry server's logger, removed after the test."""
    logger = logging.getLogger("alexnet_tvm.distribution.server")
    handlers, level = [], logger.level
    logger.setLevel(logging.DEBUG)

    def attach(text: str) -> _Event:
        h = _Event(text)
        logger.addHandler(h)
        handlers.append(h)
        return h

    yield attach
    for h in handlers:
        logger.removeHandler(h)
    logger.setLevel(level)


# --------------------------------------------------------------------------- a pack server of our own


@dataclass
class _Body:
    """What ``/packs/p.tar.gz`` sends: ``data`` in ``chunk``-byte pieces ``pause`` seconds apart, with a
    Content-Length unless ``length`` is False; ``repeat`` times over (a flood with no end in sight)."""

    data: bytes
    chunk: int = 1 << 16
    pause: float = 0.0
    length: bool = True
    repeat: int = 1
    sent: int = 0
    started: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)


class _PackHandler(http.server.BaseHTTPRequestHandler):
    server: "_PackServer"

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self) -> None:
        srv = self.server
        if self.path == "/index.json":
            self.send_response(200)
            self.send_header("Content-Length", str(len(srv.index)))
            self.end_headers()
            self.wfile.write(srv.index)
            return
        body = srv.body
        self.send_response(200)
        if body.length:
            self.send_header("Content-Length", str(len(body.data) * body.repeat))
        self.end_headers()
        try:
            for _ in range(body.repeat):  # bounded: repeat x len(data) bytes at most
                for i in range(0, len(body.data), body.chunk):
                    if body.stop.is_set():
                        return
                    self.wfile.write(body.data[i:i + body.chunk])
                    body.sent += len(body.data[i:i + body.chunk])
                    body.started.set()
                    if body.pause:
                        body.stop.wait(body.pause)
        except OSError:  # the client stopped reading: what these tests want to see
            pass


class _PackServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, index: bytes, body: _Body):
        self.index, self.body = index, body
        super().__init__(("127.0.0.1", 0), _PackHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def pack_server():
    """``start(entry, body) -> _PackServer``: index.json listing ``entry`` as packs/p.tar.gz, the pack
    sent as ``body`` says; stopped after the test."""
    servers = []

    def start(entry: dict, body: _Body) -> _PackServer:
        index = json.dumps({"format": 1, "packs": [dict(entry, file="packs/p.tar.gz")]}).encode()
        srv = _PackServer(index, body)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.body.stop.set()
        srv.shutdown()
        srv.server_close()


# --------------------------------------------------------------------------- 1. malformed registry URLs


BAD_URLS = ["http://[::1", "http://127.0.0.1:99999", "http://127.0.0.1:port", "http://", "ftp://example.org/reg"]


@pytest.mark.parametrize("url", BAD_URLS, ids=["ipv6-open", "port-99999", "port-word", "no-host", "ftp"])
def test_malformed_registry_url_is_one_line_everywhere(tmp_path, run_cli, one_line_error, url):
    junk = tmp_path / "p.tar.gz"
    junk.write_bytes(b"not a pack")
    out = tmp_path / "out"
    one_line_error(run_cli("pull", MODEL, "--target", TARGET, "--from", url, "-o", out), "URL")
    one_line_error(run_cli("publish", junk, "--to", url), "URL")
    one_line_error(run_cli("registry", "list", url), "URL")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["p.tar.gz"]


def test_serve_pull_checks_the_url_through_the_same_function():
    from alexnet_tvm.distribution.httpclient import BoundedRequest
    from alexnet_tvm.errors import RegistryError
    from alexnet_tvm.serving.pulled import PullRequest, pulled_artifacts

    for url in BAD_URLS:
        with pytest.raises(RegistryError, match="URL"):
            with pulled_artifacts(PullRequest(models=[MODEL], registry=url)):
                pass
        with pytest.raises(RegistryError, match="URL"):
            BoundedRequest(url + "/index.json", 1.0, 1.0)


def test_malformed_url_in_a_real_process_is_one_line(tmp_path):
    res = subprocess.run(CLI + ["pull", MODEL, "--target", TARGET, "--from", "http://[::1", "-o", tmp_path / "o"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == ["error: 'http://[::1' is not a valid URL (Invalid IPv6 URL)"]


# --------------------------------------------------------------------------- 2. slow clients hold no slot


def _trickle(socks: list[socket.socket], state: dict, stop: threading.Event, done: threading.Event) -> None:
    """One byte per socket every 0.2 s (for 30 s at most), noting what each got back and when it was closed."""
    deadline = time.monotonic() + 30
    while not stop.is_set() and time.monotonic() < deadline:
        for i, s in enumerate(socks):
            if i in state["closed"]:
                continue
            if select.select([s], [], [], 0)[0]:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                state["answers"][i] = state["answers"].get(i, b"") + data
                if not data:
                    state["closed"][i] = time.monotonic()
                    continue
            try:
                s.send(b"a")
            except OSError:
                state["closed"][i] = time.monotonic()
        if len(state["closed"]) == len(socks):
            done.set()
            return
        stop.wait(0.2)


def test_slow_headers_lose_their_slot_at_the_read_timeout(dart, tmp_path, registry_server):
    from alexnet_tvm.distribution.pull import PullConfig, pull
    from alexnet_tvm.distribution.registry import FolderRegistry
    from alexnet_tvm.distribution.server import ServeLimits

    FolderRegistry(tmp_path / "reg").publish(dart.pack)
    srv = registry_server(tmp_path / "reg", allow_publish=False,
                          limits=ServeLimits(read_timeout=1.5, max_connections=4))
    socks = [socket.create_connection(srv.server_address[:2], timeout=5) for _ in range(6)]
    state: dict = {"closed": {}, "answers": {}}
    stop, done = threading.Event(), threading.Event()
    try:
        for s in socks:
            s.sendall(b"GET /index.json HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        t = threading.Thread(target=_trickle, args=(socks, state, stop, done), daemon=True)
        t.start()
        assert done.wait(15), f"{len(socks) - len(state['closed'])} slow connections still held after 15 s"
        assert max(state["closed"].values()) - started < 1.5 + 6
        answers = [state["answers"].get(i, b"") for i in range(len(socks))]
        assert sum(a.startswith(b"HTTP/1.0 503") for a in answers) == 2  # 6 sockets, 4 slots
        assert sum(a == b"" for a in answers) == 4  # the slow ones: closed, never answered
        res = pull(PullConfig(model=MODEL, registry=srv.url, target=TARGET, out=tmp_path / "out", progress=False))
        assert res.out == tmp_path / "out" and (tmp_path / "out" / "manifest.json").is_file()
    finally:
        stop.set()
        for s in socks:
            s.close()


def test_a_trickled_upload_loses_its_slot_at_its_deadline(dart, tmp_path, registry_server):
    """Authorized uploads announcing 1,000 bytes, then sending one byte every 0.2 s: each is cut at its
    deadline (``deadline_for(read_timeout, 1000)``), nothing is published, and the slots are free again."""
    from alexnet_tvm.distribution.httpclient import deadline_for
    from alexnet_tvm.distribution.pull import PullConfig, pull
    from alexnet_tvm.distribution.registry import FolderRegistry
    from alexnet_tvm.distribution.server import ServeLimits

    FolderRegistry(tmp_path / "reg").publish(dart.pack)
    index = (tmp_path / "reg" / "index.json").read_bytes()
    srv = registry_server(tmp_path / "reg", limits=ServeLimits(read_timeout=1.0, max_connections=2))
    socks = [socket.create_connection(srv.server_address[:2], timeout=5) for _ in range(2)]
    state: dict = {"closed": {}, "answers": {}}
    stop, done = threading.Event(), threading.Event()
    try:
        for s in socks:
            s.sendall(b"PUT /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                      + b"\r\nContent-Length: 1000\r\n\r\n")
        started = time.monotonic()
        threading.Thread(target=_trickle, args=(socks, state, stop, done), daemon=True).start()
        assert done.wait(15), f"{len(socks) - len(state['closed'])} trickled uploads still held after 15 s"
        assert max(state["closed"].values()) - started < deadline_for(1.0, 1000) + 4
        assert all(state["answers"].get(i, b"") == b"" for i in range(len(socks)))  # nobody left to answer
        res = pull(PullConfig(model=MODEL, registry=srv.url, target=TARGET, out=tmp_path / "out", progress=False))
        assert (res.out / "manifest.json").is_file()
        assert (tmp_path / "reg" / "index.json").read_bytes() == index  # nothing published
    finally:
        stop.set()
        for s in socks:
            s.close()


# --------------------------------------------------------------------------- 3. no pull of gigabytes


def test_index_claiming_a_huge_pack_is_refused_before_downloading(dart, tmp_path, run_cli, one_line_error,
                                                                 private_tmp, registry_server):
    from alexnet_tvm.distribution.httpclient import deadline_for

    reg = registry_listing(tmp_path / "reg", dart.pack, index_entry(dart.pack, tmp_path / "scratch"))
    index = json.loads((reg / "index.json").read_text())
    real_size = index["packs"][0]["size"]
    index["packs"][0]["size"] = 50 << 30
    (reg / "index.json").write_text(json.dumps(index))
    srv = registry_server(reg, allow_publish=False)
    for src in (reg, srv.url):
        one_line_error(run_cli("pull", MODEL, "--target", TARGET, "--from", src, "-o", tmp_path / "out"),
                       "53687091200 bytes", "--max-pack-mb 2048", "before downloading")
        assert list(private_tmp.iterdir()) == [] and not (tmp_path / "out").exists()
    index["packs"][0]["size"] = real_size  # 1.4 MB: over a 1 MiB cap, under the default
    (reg / "index.json").write_text(json.dumps(index))
    one_line_error(run_cli("pull", MODEL, "--target", TARGET, "--from", reg, "-o", tmp_path / "out",
                           "--max-pack-mb", "1"), "--max-pack-mb 1")
    assert list(private_tmp.iterdir()) == [] and not (tmp_path / "out").exists()
    assert run_cli("pull", MODEL, "--target", TARGET, "--from", reg, "-o", tmp_path / "out").exit_code == 0
    assert deadline_for(10.0, 50 << 30) == 3600 and deadline_for(10.0, 2048 << 20) == 3600
    assert deadline_for(10.0, 1 << 20) == 14 and deadline_for(7200.0, 50 << 30) == 7200


def test_download_stops_once_more_than_the_index_said_arrives(dart, tmp_path, run_cli, one_line_error,
                                                             private_tmp, pack_server):
    entry = index_entry(dart.pack, tmp_path / "scratch", size=1 << 20)
    flood = _Body(b"\0" * (1 << 20), length=False, repeat=256)  # 256 MiB with no Content-Length
    srv = pack_server(entry, flood)
    one_line_error(run_cli("pull", MODEL, "--target", TARGET, "--from", srv.url, "-o", tmp_path / "out"),
                   "larger than the 1048576 bytes the index says")
    assert flood.started.is_set() and flood.sent < 32 << 20, flood.sent
    assert list(private_tmp.iterdir()) == [] and not (tmp_path / "out").exists()
    # a Content-Length other than the index's size is refused before any byte is read
    liar = pack_server(entry, _Body(b"\0" * (2 << 20)))
    one_line_error(run_cli("pull", MODEL, "--target", TARGET, "--from", liar.url, "-o", tmp_path / "out"),
                   "offers 2097152 bytes", "index says 1048576")
    assert list(private_tmp.iterdir()) == []


# --------------------------------------------------------------------------- 4. nothing after the archive's end


def _after_tar(data: bytes) -> bytes:
    return gzip.compress(gzip.decompress(data) + b"\0" * (4 << 20), 1)


def _after_gzip(data: bytes) -> bytes:
    return data + b"\0" * (4 << 20)


def _in_padding(data: bytes) -> bytes:
    tar = gzip.decompress(data)
    return gzip.compress(tar[:-100] + b"x" + b"\0" * 99)


def _second_member(data: bytes) -> bytes:
    return data + gzip.compress(b"\0" * 10240)


@pytest.mark.parametrize("spoil,fragment", [
    (_after_tar, "after the end of the tar archive"),
    (_after_gzip, "after the end of the gzip stream"),
    (_in_padding, "after the end of the tar archive"),
    (_second_member, "after the end of the tar archive"),
], ids=["zeros-after-tar", "zeros-after-gzip", "byte-in-padding", "second-gzip-member"])
def test_signed_pack_with_data_past_its_end_is_refused(dart, tmp_path, run_cli, one_line_error, spoil, fragment):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(spoil(dart.signed.read_bytes()))
    one_line_error(run_cli("publish", bad, "--to", tmp_path / "reg"), fragment)
    assert not (tmp_path / "reg").exists()
    evil = registry_listing(tmp_path / "evil", bad, index_entry(dart.signed, tmp_path / "scratch"))
    one_line_error(run_cli("pull", MODEL, "--target", TARGET, "--from", evil, "-o", tmp_path / "out",
                           "--trust", dart.pub), fragment)
    assert not (tmp_path / "out").exists()


def test_signed_pack_and_other_tar_writers_still_accepted(dart, tmp_path, run_cli):
    good = registry_listing(tmp_path / "good", dart.signed, index_entry(dart.signed, tmp_path / "scratch"))
    res = run_cli("pull", MODEL, "--target", TARGET, "--from", good, "-o", tmp_path / "out", "--trust", dart.pub)
    assert res.exit_code == 0 and "signed by" in res.output, res.output
    # GNU tar's own layout (blocking factor 20) and a pack split over two gzip members
    with tarfile.open(dart.pack, "r:gz") as t:
        members = [(m, t.extractfile(m).read()) for m in t]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for m, data in members:
            t.addfile(m, io.BytesIO(data))
    raw = buf.getvalue()
    assert len(raw) % tarfile.RECORDSIZE == 0
    split = gzip.compress(raw[:len(raw) // 2]) + gzip.compress(raw[len(raw) // 2:])
    (tmp_path / "two.tar.gz").write_bytes(split)
    res = run_cli("publish", tmp_path / "two.tar.gz", "--to", tmp_path / "reg")
    assert res.exit_code == 0, res.output


# --------------------------------------------------------------------------- 5. no server path in an answer


@pytest.mark.parametrize("member", ["pack.json", "verify.json"])
def test_publish_refusal_shows_no_server_path(dart, tmp_path, run_cli, one_line_error, registry_server, member):
    bad = repack(tmp_path / "bad.tar.gz", {**pack_members(dart.pack), member: b"{not json"})
    srv = registry_server(tmp_path / "served")
    line = one_line_error(run_cli("publish", bad, "--to", srv.url), "HTTP 400", f"the uploaded pack: {member}")
    for server_path in (tempfile.gettempdir(), "alexnet-tvm-", str(tmp_path)):
        assert server_path not in line, line
    assert sorted(p.name for p in (tmp_path / "served").iterdir()) == []


def test_server_scrubs_paths_from_any_message(tmp_path, registry_server):
    srv = registry_server(tmp_path / "served")
    upload = Path(tempfile.gettempdir()) / "alexnet-tvm-upload-x" / "upload.tar.gz"
    msg = (f"{upload}: bad; /{tempfile.gettempdir().strip('/')}/alexnet-tvm-publish-y/pack/x.json: bad; "
           f"registry {tmp_path / 'served'} is busy; {(tmp_path / 'served').resolve()}/packs/a: gone")
    public = srv.public(msg, upload)
    assert public == ("the uploaded pack: bad; a temporary file: bad; the registry is busy; "
                      "the registry/packs/a: gone"), public


# --------------------------------------------------------------------------- 6. no token: refused on the headers


def test_unauthenticated_upload_refused_before_its_body(tmp_path, registry_server, run_cli, one_line_error,
                                                        monkeypatch):
    from alexnet_tvm.distribution.server import TOKEN_ENV, ServeLimits

    srv = registry_server(tmp_path / "served", limits=ServeLimits(read_timeout=8))
    with socket.create_connection(srv.server_address[:2], timeout=3) as s:
        t0 = time.monotonic()
        s.sendall(b"PUT /publish HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (300 << 20) + b"\0" * 65536)
        answer = b""
        while len(answer) < 1 << 16:  # bounded: the answer is small, then the server hangs up
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
        elapsed = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.0 401") and b"bearer token" in answer, answer[:200]
    assert elapsed < 3, elapsed  # answered on the headers, not after 300 MiB or the 8 s read timeout
    # publish still shows the 401 although the server hung up mid-upload (20 MiB > any socket buffer)
    monkeypatch.delenv(TOKEN_ENV)
    big = tmp_path / "big.tar.gz"
    big.write_bytes(os.urandom(20 << 20))
    one_line_error(run_cli("publish", big, "--to", srv.url), "HTTP 401", "bearer token")
    assert sorted(p.name for p in (tmp_path / "served").iterdir()) == []


# --------------------------------------------------------------------------- 7. a client hanging up mid-upload


def test_client_hanging_up_mid_upload_is_one_log_line(tmp_path, registry_server, server_log, private_tmp):
    srv = registry_server(tmp_path / "served")
    seen = server_log("upload ended after")
    with socket.create_connection(srv.server_address[:2], timeout=5) as s:
        s.sendall(b"PUT /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1000000\r\n\r\n"
                  % TOKEN.encode() + b"\0" * 100000)
    assert seen.event.wait(10), [r.getMessage() for r in seen.records]
    msgs = [r.getMessage() for r in seen.records]
    assert any("100000 of 1000000 bytes" in m for m in msgs), msgs
    assert not any(r.exc_info for r in seen.records) and all(r.levelno < logging.WARNING for r in seen.records)
    assert not any('" 400' in m or '" 500' in m for m in msgs), msgs  # no answer pretended, no error counted
    assert sorted(p.name for p in (tmp_path / "served").iterdir()) == []
    deadline = time.monotonic() + 5  # the handler's temp folder goes when its thread ends
    while list(private_tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(private_tmp.iterdir()) == []


# --------------------------------------------------------------------------- 8. registry serve and SIGTERM


def _line_from(stream, deadline: float) -> str:
    """One line of a child's unbuffered stdout, waiting until ``deadline`` at most."""
    line = b""
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        if select.select([stream], [], [], 0.2)[0]:
            byte = os.read(stream.fileno(), 1)  # unbuffered: select sees every byte not yet read
            if not byte:
                break
            line += byte
    return line.decode()


def test_sigterm_stops_registry_serve_cleanly(tmp_path):
    (tmp_path / "reg").mkdir()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(CLI + ["registry", "serve", str(tmp_path / "reg"), "--port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = _line_from(proc.stdout, time.monotonic() + 60)
        assert line.startswith("serving ") and "http://127.0.0.1:" in line, line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:  # it is serving
            s.sendall(b"GET /index.json HTTP/1.0\r\n\r\n")
            assert s.recv(64).startswith(b"HTTP/1.0 404")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err
    assert out.decode().strip().endswith("stopped") and "stopped (SIGTERM)" in err.decode(), (out, err)
    assert "Traceback" not in err.decode()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


# --------------------------------------------------------------------------- 9. no temp folder left


def test_interrupted_pull_leaves_no_temp_folder(dart, tmp_path, private_tmp, monkeypatch):
    import alexnet_tvm.distribution.pull as pull_mod

    reg = registry_listing(tmp_path / "reg", dart.pack, index_entry(dart.pack, tmp_path / "scratch"))
    calls = []

    def interrupted(stream, n, *a):
        calls.append(n)
        if len(calls) > 1:
            assert list(private_tmp.glob("alexnet-tvm-pull-*/pack.tar.gz"))  # mid-download
            raise KeyboardInterrupt
        return stream.read(n)

    monkeypatch.setattr(pull_mod, "_read_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pull_mod.pull(pull_mod.PullConfig(model=MODEL, registry=str(reg), target=TARGET, out=tmp_path / "out",
                                          progress=False))
    assert len(calls) == 2 and list(private_tmp.iterdir()) == [] and not (tmp_path / "out").exists()


def test_sigterm_mid_download_leaves_no_temp_folder(dart, tmp_path, pack_server):
    """Needs the CLI's SIGTERM handler (cli/main.py turns SIGTERM into an exception, so pull's
    ``finally`` blocks run as for Ctrl-C)."""
    from alexnet_tvm.distribution.archive import sha256_digest

    entry = index_entry(dart.pack, tmp_path / "scratch", digest=sha256_digest(dart.pack), size=dart.pack.stat().st_size)
    slow = _Body(dart.pack.read_bytes(), chunk=8192, pause=0.05)  # ~160 KiB/s: ~9 s for the pack
    srv = pack_server(entry, slow)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    proc = subprocess.Popen(CLI + ["pull", MODEL, "--target", TARGET, "--from", srv.url, "-o", str(tmp_path / "out")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert slow.started.wait(60), "pull never started the download"
        deadline = time.monotonic() + 10
        while not list(tmp.glob("alexnet-tvm-pull-*/pack.tar.gz")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(tmp.glob("alexnet-tvm-pull-*/pack.tar.gz")), "no download in the temp folder"
        assert slow.sent < len(slow.data)  # still mid-download
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        slow.stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode != 0 and "Traceback" not in err.decode(), err
    assert list(tmp.glob("alexnet-tvm-pull-*")) == [] and not (tmp_path / "out").exists()

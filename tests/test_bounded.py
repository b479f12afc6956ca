"""Bounded servers and clients (issue 18): a request has one deadline however slowly the server
trickles, ``registry serve`` closes stalled connections, caps how many it serves at once, lists
no folders and answers a NUL in a path with 400 (no traceback in its log).

Every server binds 127.0.0.1 and every loop is bounded; waits have generous deadlines.
"""

from __future__ import annotations

import socket
import threading
import time



def _trickle_server(stop: threading.Event) -> tuple[socket.socket, int]:
    """Answers every request with a 100 kB body announced, then one byte every 0.5 s (at most 60)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(1)

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 100000\r\n\r\n")
                    for _ in range(60):
                        if stop.wait(0.5):
                            break
                        conn.sendall(b" ")
                except OSError:
                    continue

    threading.Thread(target=loop, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_client_deadline_covers_the_whole_request(run_cli, one_line_error):
    stop = threading.Event()
    srv, port = _trickle_server(stop)
    try:
        t0 = time.monotonic()
        one_line_error(run_cli("registry", "list", f"http://127.0.0.1:{port}", "--timeout", "2"), "within 2 s")
        assert time.monotonic() - t0 < 25  # per-read timeouts alone: 30 s of trickle
    finally:
        stop.set()
        srv.close()


def _get(url: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def test_server_refuses_listings_nul_paths_and_hidden_files(tmp_path, registry_server, caplog):
    (tmp_path / "reg" / "packs").mkdir(parents=True)
    (tmp_path / "reg" / "index.json").write_text('{"format": 1, "packs": []}')
    (tmp_path / "reg" / ".index.lock").write_text("")
    srv = registry_server(tmp_path / "reg", allow_publish=False)
    assert _get(f"{srv.url}/index.json")[0] == 200
    with caplog.at_level("DEBUG", logger="alexnet_tvm.distribution.server"):
        assert _get(f"{srv.url}/index.json%00.txt")[0] == 400
        assert _get(f"{srv.url}/")[0] == 404
        assert _get(f"{srv.url}/packs/")[0] == 404
        assert _get(f"{srv.url}/.index.lock")[0] == 404
    assert not [r for r in caplog.records if r.levelname == "ERROR" or r.exc_info]


def test_server_closes_stalled_connections_and_caps_them(tmp_path, registry_server):
    from alexnet_tvm.distribution.server import ServeLimits

    srv = registry_server(tmp_path / "a", allow_publish=False, limits=ServeLimits(read_timeout=1, max_connections=2))
    host, port = srv.server_address[:2]
    with socket.create_connection((host, port), timeout=60) as stalled:
        assert stalled.recv(100) == b""  # closed by the server's read timeout, not by ours
    srv2 = registry_server(tmp_path / "b", allow_publish=False, limits=ServeLimits(read_timeout=60, max_connections=2))
    host, port = srv2.server_address[:2]
    held = [socket.create_connection((host, port), timeout=60) for _ in range(2)]
    try:
        with socket.create_connection((host, port), timeout=60) as third:
            assert b" 503 " in third.recv(100)
    finally:
        for s in held:
            s.close()

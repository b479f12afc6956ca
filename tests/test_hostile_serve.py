"""Hostile but fair inputs to the server (the serving part of the issue): one test per case.

serve-bench takes turns between the bare library and the server and counts failures by
status code; a JSON body nested 100,000 deep is a 400; an image over Pillow's bomb limit, or one
that only grows past the pixel limit once resized (a 1 kB 400000x1 PNG), is a 413 and leaves
the server's memory alone; a client that hangs up mid-body leaves no traceback and no 500;
bad ``serve`` options are one ``error:`` line; and no valid request gets a 5xx whatever the
alignment, layout, writability or dtype of its tensor (a property test: run_batch directly,
then 2,000+ requests through tritonclient).

One tiny artifact (cifar, 32x32, 4 classes, batch 1) and one server (a child process on
127.0.0.1, stopped by its PID) serve the whole module; every request loop is bounded.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as tritonclient_http
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from helpers.artifacts import MODEL, build_tiny

CLI = str(Path(sys.executable).parent / "alexnet-tvm")
DEADLINE = 60.0
#: the property test's examples: each sends one binary and one JSON request
SERVER_EXAMPLES = 1000


@pytest.fixture(scope="module")
def art(tmp_path_factory) -> Path:
    _, folder, _ = build_tiny(tmp_path_factory.mktemp("hostile-serve"))
    return folder


@pytest.fixture(scope="module")
def loaded(art):
    from alexnet_tvm.runtime.artifact import load_artifact

    return load_artifact(art)


@pytest.fixture(scope="module")
def server(art):
    """The module's one server, on the default limits (36 MP images, 64 MB bodies)."""
    from alexnet_tvm.serving.process import server_process

    with server_process([str(art)]) as s:
        yield s


def http(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=DEADLINE) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metrics(url: str) -> dict[str, float]:
    """Sample name with sorted labels -> value, by prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    status, body = http(f"{url}/metrics")
    assert status == 200
    return {f"{s.name}{sorted(s.labels.items())}": s.value for fam in text_string_to_metric_families(body.decode())
            for s in fam.samples}


def server_errors(url: str) -> dict[str, float]:
    """HTTP code -> requests answered with it, of the error codes the server counted."""
    return {k.split("'code', '")[1][:3]: v for k, v in metrics(url).items()
            if k.startswith("alexnet_serve_errors_total")}


def log_since(server, start: int) -> str:
    return server.log_tail(10**8)[start:]


def infer_status(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    status, text = http(f"{url}/v2/models/{MODEL}/infer", body, headers)
    return status, json.loads(text)


def one_row(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, 32, 32)).astype(np.float32)


# --------------------------------------------------------------------------- 1. serve-bench takes turns


def test_serve_bench_alternates_bare_and_served_rounds_and_reports_medians(art, run_cli, tmp_path):
    out = tmp_path / "sb"
    res = run_cli("serve-bench", art, "--concurrency", "1,2", "--requests", "6", "--warmup", "1",
                  "--bare-runs", "3", "--runs", "3", "-o", out)
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "serve-bench.json").read_text())
    rounds = rep["rounds"]
    assert [r["kind"] for r in rounds] == ["bare", "served"] * 3 and [r["index"] for r in rounds] == list(range(6))
    for before, after in zip(rounds, rounds[1:]):  # one after the other, never overlapping
        assert after["start_s"] >= before["start_s"] + before["seconds"] - 1e-6
    assert all(set(r["results"]) == {"1"} and r["results"]["1"] > 0 for r in rounds if r["kind"] == "bare")
    assert all(set(r["results"]) == {"1", "2"} and r["errors"] == {} for r in rounds if r["kind"] == "served")
    assert [r["concurrency"] for r in rep["runs"]] == [1, 2] and [b["batch"] for b in rep["bare"]] == [1]
    for run in rep["runs"]:
        per_round = [r["results"][str(run["concurrency"])] for r in rounds if r["kind"] == "served"]
        assert run["images_per_s"] == pytest.approx(float(np.median(per_round)))
        assert run["rounds"] == 3 and run["requests"] == 6 and run["errors"] == 0 and run["errors_by_status"] == {}
        assert run["ratio"] > 0 and 0 < run["p50_ms"] <= run["p99_ms"]
        ratios = [r["results"][str(run["concurrency"])] / (1e3 / b["results"]["1"])
                  for b, r in zip(rounds[::2], rounds[1::2])]  # each served round over the bare one before
        assert run["ratio"] == pytest.approx(float(np.median(ratios)))
    # throughput like with like: bare images/s are the calls over their total time (the mean of the
    # equally long rounds' mean calls), the p50 is compared with the median call
    bare_means = [r["results"]["1"] for r in rounds if r["kind"] == "bare"]
    assert rep["bare"][0]["images_per_s"] == pytest.approx(1e3 / float(np.mean(bare_means)))
    assert rep["runs"][0]["bare_ms"] == rep["bare"][0]["median_ms"] > 0
    table = (out / "serve-bench.md").read_text()
    assert table.count("\n| 1 | 6 | 0 |") == 1 and table.count("\n| 2 | 6 | 0 |") == 1
    assert table.count("| bare |") == 3 and table.count("| served |") == 3 and "3 bare and 3 served rounds" in table


def test_serve_bench_counts_failures_by_status_code(server):
    from alexnet_tvm.serving.bench import LoadRun, ServeBenchResult, markdown_table
    from alexnet_tvm.serving.load import client_load
    from alexnet_tvm.serving.protocol import encode_binary_request

    body, headers = encode_binary_request(one_row(0), "x")
    load = client_load(f"{server.url}/v2/models/nope/infer", body, headers, 2, 6, DEADLINE)
    assert load.latencies == [] and dict(load.errors) == {"404": 6}
    load = client_load(f"{server.url}/v2/models/{MODEL}/infer", body, headers, 2, 4, DEADLINE)
    assert len(load.latencies) == 4 and dict(load.errors) == {} and load.seconds > 0
    run = LoadRun(concurrency=8, requests=20, rounds=3, errors=3, errors_by_status={"503": 2, "timeout": 1},
                  seconds=1.0, images_per_s=50.0, p50_ms=2.0, p99_ms=3.0, bare_batch=1, bare_images_per_s=60.0,
                  bare_ms=1.5, ratio=0.8, p50_over_bare_ms=0.5)
    table = markdown_table(ServeBenchResult(MODEL, "x86-avx2", "cpu", 0.0, [], [run]))
    assert "\n| 8 | 20 | 3 (503: 2, timeout: 1) | 50.0 |" in table


def test_load_generator_counts_timeouts_and_refused_connections():
    """A listener that never answers costs each request its timeout, counted as such; a closed port
    fails every request as a connection error, without a traceback."""
    from alexnet_tvm.serving.load import client_load
    from alexnet_tvm.serving.protocol import encode_binary_request

    body, headers = encode_binary_request(one_row(0), "x")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v2/models/m/infer"
        t = time.monotonic()
        load = client_load(url, body, headers, 2, 4, 0.3)
        assert dict(load.errors) == {"timeout": 4} and load.latencies == [] and time.monotonic() - t < 10
    load = client_load(url, body, headers, 2, 3, 0.3)  # the port is closed now
    assert dict(load.errors) == {"connection": 3}


def test_serve_bench_refuses_bad_counts_in_one_line(art, run_cli, one_line_error):
    for args, fragment in [(["--runs", "0"], "--runs"), (["--requests", "0"], "--requests"),
                           (["--max-delay-ms", "nan"], "--max-delay-ms")]:
        res = run_cli("serve-bench", art, *args)
        assert res.exit_code == 2
        one_line_error(res, fragment)


# --------------------------------------------------------------------------- 2. JSON nested 100,000 deep


@pytest.mark.parametrize("depth", [100_000, 20_000, 40], ids=["100k-threaded", "20k-inline", "40-numpy"])
def test_deeply_nested_json_is_a_400(server, depth):
    """100,000 levels are parsed on a worker thread (over 64 kB), 20,000 on the event loop; 40 parse
    but are deeper than numpy takes. Each is one line of JSON, 400, and serving goes on."""
    body = b'{"inputs":[{"name":"x","shape":[1,3,32,32],"datatype":"FP32","data":' + b"[" * depth + b"0" \
        + b"]" * depth + b"}]}"
    status, answer = infer_status(server.url, body)
    assert status == 400 and answer["error"], answer
    c = tritonclient_http.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=DEADLINE)
    assert triton_infer(c, one_row(1), binary=True).shape == (1, 4)


# --------------------------------------------------------------------------- 3. image bombs are 413


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (no pixel data to speak of)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def classify(url: str, body: bytes) -> tuple[int, dict]:
    status, text = http(f"{url}/v2/models/{MODEL}/classify", body, {"Content-Type": "image/png"})
    return status, json.loads(text)


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set (VmHWM), or its current one where /proc has no peak."""
    import psutil

    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return psutil.Process(pid).memory_info().rss


def test_image_over_pillows_bomb_limit_is_a_413(server):
    """20000 x 10000 = 200 MP: over twice Image.MAX_IMAGE_PIXELS, so Image.open itself refuses it."""
    status, answer = classify(server.url, png_header(20000, 10000))
    assert status == 413 and answer["error"], answer
    status, answer = classify(server.url, png_header(7000, 7000))  # 49 MP: over --max-image-pixels 36 MP
    assert status == 413 and "36000000" in answer["error"], answer


def test_a_strip_that_only_the_resize_makes_huge_is_a_413_and_memory_stays_bounded(server):
    buf = io.BytesIO()
    Image.new("RGB", (400_000, 1), (200, 30, 30)).save(buf, "PNG")
    strip = buf.getvalue()
    assert len(strip) < 4096  # 1.2 kB that would resize to 12.8M x 32
    status, answer = classify(server.url, strip)
    assert status == 413 and "resized" in answer["error"], answer
    assert peak_rss_bytes(server.proc.pid) < 1.5e9
    normal = io.BytesIO()
    Image.new("RGB", (45, 38), (10, 200, 10)).save(normal, "PNG")
    status, answer = classify(server.url, normal.getvalue())
    assert status == 200 and len(answer["top"]) == 4, answer


# --------------------------------------------------------------------------- 4. a client hanging up mid-body


def hang_up_mid_body(url: str, head: bytes, sent: bytes) -> None:
    """Headers that promise 1 MB, ``sent`` bytes of it, then close."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=DEADLINE) as s:
        s.sendall(b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: %s\r\nContent-Length: 1048576\r\n%s\r\n%s"
                  % (MODEL.encode(), host.encode(), head, sent))
        time.sleep(0.2)


def disconnects(url: str) -> float:
    return sum(v for k, v in metrics(url).items() if k.startswith("alexnet_serve_client_disconnects_total"))


def test_a_client_hanging_up_mid_body_is_no_traceback_and_no_500(server):
    start = len(server.log_tail(10**8))
    before, errors_before = disconnects(server.url), server_errors(server.url)
    cases = [(b"Content-Type: application/json\r\n", b'{"inputs": [{"name"'),
             (b"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: 80\r\n", b"\0" * 300),
             (b"", b"")]
    for head, sent in cases:
        hang_up_mid_body(server.url, head, sent)
    end = time.monotonic() + DEADLINE
    while disconnects(server.url) < before + len(cases) and server_errors(server.url) == errors_before:
        assert time.monotonic() < end, "the server never noticed the hang-ups"
        time.sleep(0.05)
    assert disconnects(server.url) == before + len(cases)
    assert server_errors(server.url) == errors_before  # no 500, nor any other code, for a request nobody reads
    assert "Traceback" not in log_since(server, start) and "Error handling request" not in log_since(server, start)
    assert http(f"{server.url}/v2/health/ready")[0] == 200


# --------------------------------------------------------------------------- 5. bad serve options


@pytest.mark.parametrize("args,fragment", [
    (["--max-body-mb", "nan"], "--max-body-mb"),
    (["--max-body-mb", "inf"], "--max-body-mb"),
    (["--max-image-mb", "-1"], "--max-image-mb"),
    (["--port", "-5"], "--port"),
    (["--port", "70000"], "--port"),
    (["--timeout", "nan"], "--timeout"),
    (["--max-delay-ms", "inf"], "--max-delay-ms"),
    (["--max-queue", "0"], "--max-queue"),
])
def test_bad_serve_options_are_one_error_line_and_exit_2(art, args, fragment):
    res = subprocess.run([CLI, "serve", str(art), *args], capture_output=True, text=True, timeout=DEADLINE)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""


# --------------------------------------------------------------------------- 6. any valid tensor, no 5xx


def placed(values: np.ndarray, offset: int, layout: str, writable: bool) -> np.ndarray:
    """An array equal to ``values`` whose first byte sits ``offset`` bytes past a 64-byte boundary,
    laid out as ``layout`` (C, F, every other element, reversed, broadcast), and read-only unless
    ``writable``."""
    if layout == "broadcast":  # zero strides: one row of 32 repeated down every column
        values = np.broadcast_to(values[:, :, :1, :], values.shape)
    outer = values.shape[:-1] + (2 * values.shape[-1],) if layout == "strided" else values.shape
    nbytes = int(np.prod(outer)) * values.itemsize
    raw = np.zeros(nbytes + 128, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    base = np.ndarray(outer, values.dtype, buffer=raw[start:start + nbytes], order="F" if layout == "F" else "C")
    if layout == "strided":
        arr = base[..., ::2]
    elif layout == "reversed":
        arr = base[..., ::-1]
    elif layout == "broadcast":
        base[...] = values
        arr = np.broadcast_to(base[:, :, :1, :], values.shape)
        assert not arr.flags.writeable
        return arr
    else:
        arr = base
    arr[...] = values
    arr.flags.writeable = writable
    return arr


def test_64_byte_aligned_read_only_input_runs(loaded):
    x = placed(one_row(7), 0, "C", writable=False)
    assert x.ctypes.data % 64 == 0 and not x.flags.writeable and x.flags.c_contiguous
    got = loaded.run_batch(x)
    assert got.shape == (1, 4) and np.array_equal(got, loaded.run_batch(np.array(x)))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(offset=st.integers(0, 63), layout=st.sampled_from(["C", "F", "strided", "reversed", "broadcast"]),
       writable=st.booleans(), dtype=st.sampled_from(["<f4", ">f4", "<f8", "<f2"]), seed=st.integers(0, 2**31))
def test_run_batch_gives_the_same_logits_whatever_the_array(loaded, offset, layout, writable, dtype, seed):
    values = np.random.default_rng(seed).standard_normal(loaded.input_shape).astype(dtype)
    x = placed(values, offset, layout, writable)
    want = loaded.run_batch(np.array(x, dtype=np.float32, order="C"))  # a fresh canonical copy
    got = loaded.run_batch(x)
    assert got.dtype == np.float32 and np.array_equal(got, want)


def triton_infer(c, x: np.ndarray, binary: bool, request_id: str = "") -> np.ndarray:
    inp = tritonclient_http.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = tritonclient_http.InferRequestedOutput("logits", binary_data=binary)
    return c.infer(MODEL, [inp], outputs=[out], request_id=request_id).as_numpy("logits")


@pytest.fixture(scope="module")
def triton(server):
    c = tritonclient_http.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=DEADLINE)
    yield c
    c.close()


def test_every_valid_request_is_answered_with_the_artifacts_logits_and_none_gets_a_5xx(loaded, triton, server):
    """Every pad 0-63 of request id (which moves the binary tensor to every offset mod 64 in the body;
    the server reads it into a buffer that aligns the tensor, JSON takes the other road), binary and
    JSON, then hypothesis's examples: at least 2,000 requests, each answered with the artifact's own
    logits, and no 5xx in the server's metrics afterwards."""
    sent: dict[int, int] = {}

    def check(pad: int, seed: int, scale: float) -> None:
        x = one_row(seed) * np.float32(scale)
        want = loaded.run_batch(x.copy())
        for binary in (True, False):
            try:
                got = triton_infer(triton, x, binary, request_id="r" * pad)
            except tritonclient_http.InferenceServerException as e:
                pytest.fail(f"binary={binary} pad={pad}: {e.status()} {e.message()}")
            sent[pad] = sent.get(pad, 0) + 1
            assert got.dtype == np.float32 and np.array_equal(got, want, equal_nan=True), (binary, pad, seed)

    for pad in range(64):
        check(pad, pad, 1.0)

    @settings(max_examples=SERVER_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(pad=st.integers(0, 63), seed=st.integers(0, 2**31), scale=st.sampled_from([1e-30, 1.0, 1e3, 1e30]))
    def examples(pad: int, seed: int, scale: float) -> None:
        check(pad, seed, scale)

    examples()
    total = sum(sent.values())
    assert total >= 2000 and sorted(sent) == list(range(64))
    assert not {code: n for code, n in server_errors(server.url).items() if code.startswith("5")}
    ok = sum(v for k, v in metrics(server.url).items()
             if k.startswith("alexnet_serve_requests_total") and "'200'" in k and "infer" in k)
    assert ok >= total


def test_served_thread_pool_neither_spins_nor_pins_unless_the_user_says(art, monkeypatch):
    """TVM's workers spinning after each inference, or pinned to a core, take a core from the event
    loop (measured in docs/performance.md): the server and serve-bench's bare rounds run with spin 0
    and unpinned workers; a user's value wins."""
    from alexnet_tvm.serving.models import BIND_ENV, SPIN_ENV, load_models

    monkeypatch.delenv(SPIN_ENV, raising=False)
    monkeypatch.delenv(BIND_ENV, raising=False)
    load_models([art])
    assert os.environ[SPIN_ENV] == "0" and os.environ[BIND_ENV] == "0"
    monkeypatch.setenv(SPIN_ENV, "300000")
    monkeypatch.setenv(BIND_ENV, "1")
    load_models([art])
    assert os.environ[SPIN_ENV] == "300000" and os.environ[BIND_ENV] == "1"

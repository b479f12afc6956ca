"""serve: the Open Inference Protocol server, driven by a real client (tritonclient) on loopback.

Every server here is a child process (``alexnet-tvm serve ... --port 0``) found by the URL
line it prints and stopped by its PID with SIGTERM. Waits are on events (a metric reaching a
value, a thread finishing) with generous deadlines; request loops are bounded in count.
"""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as tritonclient_http  # the dev extra: a real OIP client
from PIL import Image

from helpers.data import class_image

MODEL = "tiny"
CLASSES = 10
TOKEN = "s3cret-token"
DEADLINE = 120.0


@pytest.fixture(scope="module")
def arts(tmp_path_factory):
    """A 10-class cifar model (width 0.125) built for batch 1 and batch 4: (b1 folder, b4 folder)."""
    from alexnet_tvm.compile.build import BuildConfig, build
    from alexnet_tvm.model.checkpoint import init_checkpoint
    from alexnet_tvm.targets import load_targets

    root = tmp_path_factory.mktemp("serve")
    ckpt = root / f"{MODEL}.pt"
    init_checkpoint("cifar", CLASSES, ckpt, width=0.125, seed=3)
    spec = load_targets(Path(__file__).resolve().parent.parent / "targets.yaml")["x86-avx2"]
    for b in (1, 4):
        build(BuildConfig(model=ckpt, target=spec, out=root / f"b{b}", logs_dir=root / "logs", batch=b))
    return root / "b1", root / "b4"


@pytest.fixture(scope="module")
def loaded(arts):
    from alexnet_tvm.runtime.artifact import load_artifact

    return tuple(load_artifact(a) for a in arts)


@pytest.fixture(scope="module")
def server(arts):
    """Both artifacts as one model; a short gather delay so concurrent clients share batches."""
    from alexnet_tvm.serving.process import server_process

    with server_process([*map(str, arts), "--max-delay-ms", "20", "--max-body-mb", "1",
                         "--max-image-pixels", "100000"]) as s:
        yield s


def client(url: str):
    return tritonclient_http.InferenceServerClient(url.removeprefix("http://"), network_timeout=DEADLINE)


def rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(np.float32)


def infer(c, x: np.ndarray, binary: bool = True, headers: dict | None = None) -> np.ndarray:
    inp = tritonclient_http.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = tritonclient_http.InferRequestedOutput("logits", binary_data=binary)
    return c.infer(MODEL, [inp], outputs=[out], headers=headers).as_numpy("logits")


def http(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one request, errors included."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=DEADLINE) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def metric(url: str, name: str, headers: dict | None = None) -> dict[str, float]:
    """Sample name (with labels) -> value, read with prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    status, _, body = http(f"{url}/metrics", headers=headers)
    assert status == 200
    return {f"{s.name}{sorted(s.labels.items())}": s.value for fam in text_string_to_metric_families(body.decode())
            for s in fam.samples if s.name.startswith(name)}


def wait_until(check, what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def png(w: int, h: int, label: int = 1) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(class_image(label, max(w, h), np.random.default_rng(label))[:h, :w]).save(buf, "PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- protocol


def test_health_and_metadata_through_tritonclient(server):
    c = client(server.url)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready(MODEL)
    assert not c.is_model_ready("nope")
    meta = c.get_model_metadata(MODEL)
    assert meta["name"] == MODEL and meta["versions"] == ["1"] and meta["platform"] == "tvm_relax"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3, 32, 32]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, CLASSES]}]
    assert meta["parameters"]["batch_sizes"] == [1, 4]
    assert "binary_tensor_data" in c.get_server_metadata()["extensions"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("n", [1, 3])
def test_infer_logits_equal_run_batch_bit_for_bit(server, loaded, binary, n):
    """One row runs on the batch-1 artifact; three on the batch-4 one, padded, the pad row dropped."""
    b1, b4 = loaded
    x = rows(n, seed=10 + n)
    got = infer(client(server.url), x, binary)
    if n == 1:
        want = b1.run_batch(x)
    else:
        want = b4.run_batch(np.concatenate([x, np.zeros((4 - n, 3, 32, 32), np.float32)]))[:n]
    assert got.dtype == np.float32 and got.shape == (n, CLASSES)
    assert np.array_equal(got, want)


def test_classify_answers_top_k_as_predict_does(server, arts, tmp_path):
    from alexnet_tvm.runtime.predict import predict_files

    img = tmp_path / "img.png"
    img.write_bytes(png(45, 38, label=2))
    status, _, body = http(f"{server.url}/v2/models/{MODEL}/classify?top_k=3", img.read_bytes(),
                           {"Content-Type": "image/png"})
    assert status == 200, body
    top = json.loads(body)["top"]
    [(_, want)] = predict_files(arts[0], [img], top_k=3)
    assert [t["class"] for t in top] == [name for name, _ in want]
    assert [t["probability"] for t in top] == pytest.approx([p for _, p in want], rel=1e-6)


def _binary_body(head: dict, tail: bytes) -> tuple[bytes, dict]:
    text = json.dumps(head).encode()
    return text + tail, {"Inference-Header-Content-Length": str(len(text)), "Content-Type": "application/octet-stream"}


def _inp(shape, datatype="FP32", name="x", **extra) -> dict:
    return {"name": name, "shape": shape, "datatype": datatype, **extra}


MALFORMED = {
    "not json": (b"{nope", {}),
    "not an object": (b"[1, 2]", {}),
    "no inputs": (json.dumps({"outputs": []}).encode(), {}),
    "wrong input name": (json.dumps({"inputs": [_inp([1, 3, 32, 32], name="y", data=[0.0] * 3072)]}).encode(), {}),
    "wrong dtype": (json.dumps({"inputs": [_inp([1, 3, 32, 32], "INT32", data=[0] * 3072)]}).encode(), {}),
    "wrong shape": (json.dumps({"inputs": [_inp([1, 3, 31, 32], data=[0.0] * 2976)]}).encode(), {}),
    "too many rows": (json.dumps({"inputs": [_inp([5, 3, 32, 32], data=[0.0] * 15360)]}).encode(), {}),
    "count mismatch": (json.dumps({"inputs": [_inp([1, 3, 32, 32], data=[0.0] * 10)]}).encode(), {}),
    "not numbers": (json.dumps({"inputs": [_inp([1, 3, 32, 32], data=["a"] * 3072)]}).encode(), {}),
    "unknown output": (json.dumps({"inputs": [_inp([1, 3, 32, 32], data=[0.0] * 3072)],
                                   "outputs": [{"name": "probs"}]}).encode(), {}),
    "short binary": _binary_body({"inputs": [_inp([1, 3, 32, 32], parameters={"binary_data_size": 12288})]},
                                 b"\0" * 100),
    "bad header length": (b"{}", {"Inference-Header-Content-Length": "99"}),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_infer_gets_one_line_json_400_and_serving_goes_on(server, case):
    body, headers = MALFORMED[case]
    status, _, text = http(f"{server.url}/v2/models/{MODEL}/infer", body, headers)
    assert status == 400, text
    assert b"\n" not in text.strip() and json.loads(text)["error"]
    assert infer(client(server.url), rows(1, seed=0)).shape == (1, CLASSES)


@pytest.mark.parametrize("body,status", [(b"not an image", 400), (b"", 400), (png(400, 300), 413)],
                         ids=["garbage", "empty", "too many pixels"])
def test_bad_images_get_400_and_big_ones_413(server, body, status):
    code, _, text = http(f"{server.url}/v2/models/{MODEL}/classify", body, {"Content-Type": "image/png"})
    assert code == status, text
    assert json.loads(text)["error"]


def test_unknown_model_404_and_big_body_413(server):
    code, _, text = http(f"{server.url}/v2/models/nope/infer", b"{}")
    assert code == 404 and "nope" in json.loads(text)["error"]
    code, _, text = http(f"{server.url}/v2/models/{MODEL}/infer", b" " * (2 * 1024 * 1024))
    assert code == 413 and json.loads(text)["error"]


def test_concurrent_requests_are_batched_and_each_answer_is_its_own(server, loaded):
    """8 threads x 6 distinct requests: every answer is its own input's logits, and some batches held > 1 row."""
    b1, b4 = loaded
    before = metric(server.url, "alexnet_serve_batch_size")
    results: dict[tuple[int, int], np.ndarray] = {}
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            c = client(server.url)
            for i in range(6):
                results[t, i] = infer(c, rows(1, seed=1000 * t + i))
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(DEADLINE)
    assert not errors and len(results) == 48, errors
    for (t, i), got in results.items():
        x = rows(1, seed=1000 * t + i)
        assert np.array_equal(got, b1.run_batch(x)) or np.array_equal(got, b4.predict(x)), (t, i)
    after = metric(server.url, "alexnet_serve_batch_size")
    key_count, key_one = f"alexnet_serve_batch_size_count{[('model', MODEL)]}", \
        f"alexnet_serve_batch_size_bucket{sorted({'model': MODEL, 'le': '1.0'}.items())}"
    dispatches = after[key_count] - before.get(key_count, 0)
    single = after[key_one] - before.get(key_one, 0)
    assert dispatches < 48 and single < dispatches, (dispatches, single)


def test_metrics_count_requests_and_errors_by_code(server):
    http(f"{server.url}/v2/models/{MODEL}/infer", b"{nope")
    m = metric(server.url, "alexnet_serve_")
    assert m[f"alexnet_serve_errors_total{[('code', '400')]}"] >= 1
    ok = [v for k, v in m.items() if k.startswith("alexnet_serve_requests_total") and "'200'" in k and "infer" in k]
    assert ok and ok[0] >= 1
    assert any(k.startswith("alexnet_serve_request_duration_seconds_bucket") for k in m)
    assert m[f"alexnet_serve_queue_depth{[('model', MODEL)]}"] == 0


# --------------------------------------------------------------------------- limits and life cycle

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _park(url: str, n: int) -> tuple[list[threading.Thread], dict[int, object]]:
    """``n`` one-row requests from their own threads; results[i] is the logits or the exception."""
    results: dict[int, object] = {}

    def one(i: int) -> None:
        try:
            results[i] = infer(client(url), rows(1, seed=500 + i), headers=AUTH)
        except BaseException as e:  # noqa: BLE001 - checked by the test
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    return threads, results


def _queue_depth(url: str) -> float:
    return metric(url, "alexnet_serve_queue_depth", AUTH).get(f"alexnet_serve_queue_depth{[('model', MODEL)]}", 0)


@pytest.fixture
def slow_batch_server(arts):
    """Batch 4 only, a 2-request queue, a 6 s gather delay (two one-row requests sit in the queue), a token."""
    from alexnet_tvm.serving.process import server_process

    with server_process([str(arts[1]), "--max-queue", "2", "--max-delay-ms", "6000", "--token", TOKEN]) as s:
        yield s


def test_token_guards_everything_but_health(slow_batch_server):
    url = slow_batch_server.url
    assert http(f"{url}/v2/health/ready")[0] == 200
    status, headers, text = http(f"{url}/v2/models/{MODEL}")
    assert status == 401 and headers.get("WWW-Authenticate") == "Bearer" and json.loads(text)["error"]
    assert http(f"{url}/v2/models/{MODEL}", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert http(f"{url}/v2/models/{MODEL}", headers=AUTH)[0] == 200


def test_a_full_queue_answers_503_at_once(slow_batch_server, loaded):
    url = slow_batch_server.url
    threads, results = _park(url, 2)
    wait_until(lambda: _queue_depth(url) == 2, "two queued requests")
    t0 = time.monotonic()
    with pytest.raises(tritonclient_http.InferenceServerException) as e:
        infer(client(url), rows(1, seed=7), headers=AUTH)
    assert e.value.status() == "503" and "queue full" in e.value.message()
    assert time.monotonic() - t0 < 3.0 and all(th.is_alive() for th in threads)  # refused, not queued
    assert slow_batch_server.stop() == 0  # SIGTERM: the parked two are answered first
    for th in threads:
        th.join(DEADLINE)
    assert all(isinstance(r, np.ndarray) for r in results.values()), results


def test_sigterm_drains_in_flight_requests_then_exits_0(slow_batch_server, loaded):
    url = slow_batch_server.url
    threads, results = _park(url, 2)
    wait_until(lambda: _queue_depth(url) == 2, "two queued requests")
    assert slow_batch_server.stop() == 0
    for th in threads:
        th.join(DEADLINE)
    b4 = loaded[1]
    for i in range(2):
        assert np.array_equal(results[i], b4.predict(rows(1, seed=500 + i))), results[i]
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/v2/health/live", timeout=10)
    assert "drained" in slow_batch_server.log_tail()


def test_a_request_past_its_timeout_gets_504_and_leaves_the_queue(arts):
    from alexnet_tvm.serving.process import server_process

    with server_process([str(arts[1]), "--max-delay-ms", "30000", "--timeout", "1"]) as s:
        with pytest.raises(tritonclient_http.InferenceServerException) as e:
            infer(client(s.url), rows(1, seed=3))
        assert e.value.status() == "504"
        assert metric(s.url, "alexnet_serve_queue_depth")[f"alexnet_serve_queue_depth{[('model', MODEL)]}"] == 0


@pytest.mark.parametrize("args,fragment", [
    (["--host", "0.0.0.0"], "--token"),
    ([], "no artifact to serve"),
    (["--pull", "tiny"], "--from"),
])
def test_serve_refuses_bad_starts_in_one_line(run_cli, one_line_error, monkeypatch, args, fragment):
    monkeypatch.delenv("ALEXNET_TVM_SERVE_TOKEN", raising=False)
    res = run_cli("serve", *args)
    assert res.exit_code == 2
    one_line_error(res, fragment)


# --------------------------------------------------------------------------- pull and serve-bench


@pytest.fixture(scope="module")
def registry(arts, tmp_path_factory):
    from alexnet_tvm.distribution.pack import pack_artifact
    from alexnet_tvm.distribution.registry import FolderRegistry

    root = tmp_path_factory.mktemp("serve-registry")
    pack = root / "tiny-b1.tar.gz"
    pack_artifact(arts[0], pack)
    FolderRegistry(root / "reg").publish(pack)
    return root / "reg"


def test_serve_pull_checks_and_serves_a_registry_pack(registry, loaded):
    from alexnet_tvm.serving.process import server_process

    with server_process(["--pull", MODEL, "--from", str(registry)]) as s:
        x = rows(1, seed=42)
        assert np.array_equal(infer(client(s.url), x), loaded[0].run_batch(x))


def test_serve_pull_refuses_a_tampered_pack(registry, tmp_path, run_cli, one_line_error):
    import shutil

    reg = tmp_path / "reg"
    shutil.copytree(registry, reg)
    [pack] = [p for p in reg.rglob("*.tar.gz")]
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    res = run_cli("serve", "--pull", MODEL, "--from", str(reg), "--port", "0")
    assert res.exit_code == 2
    one_line_error(res, "digest")


def test_serve_pull_trust_refuses_an_unsigned_pack(registry, tmp_path, run_cli, one_line_error):
    """serve --pull --trust KEY.pub accepts only packs signed by KEY, as pull --trust does."""
    from alexnet_tvm.distribution.signing import keygen

    pub, _ = keygen(tmp_path / "keys" / "me.key")
    res = run_cli("serve", "--pull", MODEL, "--from", str(registry), "--trust", pub, "--port", "0")
    one_line_error(res, "sign")


def test_serve_bench_writes_json_and_markdown(arts, run_cli, tmp_path):
    out = tmp_path / "sb"
    res = run_cli("serve-bench", *arts, "--concurrency", "1,4", "--requests", "12", "--warmup", "2",
                  "--bare-runs", "3", "--runs", "2", "-o", out)
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "serve-bench.json").read_text())
    assert rep["model"] == MODEL and [b["batch"] for b in rep["bare"]] == [1, 4]
    assert [r["concurrency"] for r in rep["runs"]] == [1, 4]
    assert [r["kind"] for r in rep["rounds"]] == ["bare", "served", "bare", "served"]
    for r in rep["runs"]:
        assert r["errors"] == 0 and r["errors_by_status"] == {} and r["requests"] == 12 and r["rounds"] == 2
        assert r["images_per_s"] > 0 and r["ratio"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]
    assert [r["bare_batch"] for r in rep["runs"]] == [1, 4]
    table = (out / "serve-bench.md").read_text()
    assert table.count("\n| 1 | 12 | 0 |") == 1 and table.count("\n| 4 | 12 | 0 |") == 1

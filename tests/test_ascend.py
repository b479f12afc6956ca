"""The Ascend OM path: ModelZoo ONNX, .bin inputs, ais_bench results in every format and layout, metric.

No NPU here: ONNX Runtime on the exported ONNX stands in for the OM, and the
helpers below write its outputs the way ais_bench does (each format, the current
and the old layout, padded last batches, appended TXT re-runs, several devices).
The accuracy checks use label files designed from the reference logits (the true
class of image i sits at a chosen rank), so the expected Top-k is known exactly,
and an independent reader/ranker recomputes it from the files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from alexnet_tvm.errors import AscendError, DatasetError, OutputExistsError
from alexnet_tvm.meta import ModelMeta
from alexnet_tvm.runtime import ascend as A

from helpers.models import repo_targets

N_CLASSES = 10
BIN_BYTES = 3 * 224 * 224 * 4
#: rank of the true class for image i (natural order), cycling: Top-k is then known exactly
RANKS = (0, 1, 0, 2, 5, 0, 3, 9, 4, 0, 1, 6, 2)

#: name -> (size, PIL mode, class folder); sizes exercise up/down-scaling and both orientations
IMAGES = {
    "img_1.png": ((300, 260), "RGB", "ant"),
    "img_2.png": ((256, 256), "RGB", "ant"),
    "img_10.png": ((224, 224), "L", "ant"),
    "img_11.png": ((500, 230), "RGBA", "ant"),
    "photo.b.jpeg": ((230, 500), "RGB", "bee"),
    "ILSVRC2012_val_00000003.JPEG": ((640, 480), "RGB", "bee"),
    "ILSVRC2012_val_00000012.JPEG": ((97, 120), "RGB", "bee"),
    "Zeta.png": ((257, 400), "P", "bee"),
    "a9.bmp": ((320, 320), "RGB", "cat"),
    "a10.png": ((400, 257), "LA", "cat"),
    "b.png": ((260, 300), "RGB", "cat"),
    "c.tiff": ((512, 384), "RGB", "cat"),
    "d.webp": ((288, 288), "RGB", "cat"),
}


def _natural(names):
    """ais_bench's order, written independently: plain sort, then digit runs compared as numbers."""
    key = lambda s: [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]  # noqa: E731
    return sorted(sorted(names), key=key)


@dataclass
class Env:
    root: Path
    checkpoint: Path
    onnx: Path
    images: Path  # ImageFolder tree (3 classes)
    inputs: Path  # preprocessed .bin folder
    names: list[str]  # input stems, natural order
    ref: dict[str, np.ndarray]  # ORT logits per name (the "NPU")
    eager: np.ndarray  # eager PyTorch logits, rows in ``names`` order (the "TVM")
    ranked_labels: Path
    session: object


def _tiny_model() -> nn.Module:
    """Width-0.125 torchvision AlexNet, re-initialised so logits are well spread (no near-ties)."""
    from alexnet_tvm.model.variants import build_model

    torch.manual_seed(0)
    model = build_model("torchvision", num_classes=N_CLASSES, width=0.125)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.normal_(m.bias, std=0.5)
    return model.eval()


def _write_images(root: Path) -> None:
    rng = np.random.default_rng(0)
    for name, ((w, h), mode, cls) in IMAGES.items():
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        arr[: h // 2] //= 2  # structure, so that crops differ from resizes
        img = Image.fromarray(arr).convert(mode)
        (root / cls).mkdir(parents=True, exist_ok=True)
        fmt = "JPEG" if name.lower().endswith((".jpeg", ".jpg")) else None
        img.save(root / cls / name, format=fmt)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Env:
    import onnxruntime as ort

    from alexnet_tvm.interface.ascend import export_onnx
    from alexnet_tvm.model.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("ascend")
    model = _tiny_model()
    meta = ModelMeta(arch="torchvision", num_classes=N_CLASSES, input_size=224, resize_size=256,
                     class_names=[f"c{i}" for i in range(N_CLASSES)], width=0.125)
    ckpt = root / "model.pt"
    save_checkpoint(model, meta, ckpt)
    onnx_path = root / "alexnet.onnx"
    export_onnx(ckpt, onnx_path)
    _write_images(root / "images")
    A.preprocess_folder(root / "images", root / "pre_dataset")
    names = _natural([p.name.split(".")[0] for p in (root / "pre_dataset").iterdir()])
    x = np.stack([np.fromfile(root / "pre_dataset" / f"{n}.bin", np.float32).reshape(3, 224, 224) for n in names])
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"actual_input_1": x})[0]
    with torch.no_grad():
        eager = model(torch.from_numpy(x)).numpy()
    gaps = np.diff(np.sort(ref, axis=1), axis=1)
    assert gaps.min() > 1e-4, "reference logits too close for exact rank-designed labels"
    lines = []
    for i, n in enumerate(names):
        label = int(np.argsort(-ref[i])[RANKS[i]])
        lines.append(f"{n}.JPEG {label}\n")
    (root / "ranked_label.txt").write_text("".join(lines))
    return Env(root, ckpt, onnx_path, root / "images", root / "pre_dataset", names,
               {n: ref[i] for i, n in enumerate(names)}, eager, root / "ranked_label.txt", sess)


# --------------------------------------------------------------------------- ais_bench emulation

PAD = object()


def _save(path: Path, row: np.ndarray, fmt: str, append: bool) -> None:
    """ais_bench's writer: tofile / np.save / rows of '%f ' then a newline (append mode before mid 2023)."""
    if fmt == "npy":
        np.save(path, row)
    elif fmt == "txt":
        out = row.reshape(-1, row.shape[-1])
        with open(path, "ab" if append else "wb") as f:
            for r in out:
                np.savetxt(f, np.c_[r], fmt="%f", newline=" ")
                f.write(b"\n")
    else:
        row.tofile(path)


def ais_bench(env: Env, output: Path, dirname: str, *, fmt: str, batch: int, layout: str = "current",
              append: bool = False, files: list[Path] | None = None, perturb: float = 0.0) -> Path:
    """Run the stand-in NPU over the inputs in batches of ``batch`` and write what ais_bench writes."""
    if files is None:
        files = [env.inputs / f for f in _natural(os.listdir(env.inputs))]
    out_dir = output / dirname
    out_dir.mkdir(parents=True, exist_ok=True)
    filesinfo: dict[int, dict] = {}
    times = []
    for index, start in enumerate(range(0, len(files), batch)):
        chunk = list(files[start:start + batch])
        padded = chunk + [PAD] * (batch - len(chunk))  # short last batch: padded with the batch's first file
        x = np.stack([np.fromfile(chunk[0] if f is PAD else f, np.float32).reshape(3, 224, 224) for f in padded])
        y = env.session.run(None, {"actual_input_1": x})[0] + np.float32(perturb)
        times.append(1.0 + 0.1 * index)
        for j, (f, sub) in enumerate(zip(padded, np.array_split(y, batch, 0))):
            sid = index * batch + j
            if f is PAD:
                continue
            stem = os.path.basename(f).split(".")[0]
            name = f"{stem}_0.{fmt}" if layout == "current" else f"sample_id_{sid}_output_0.{fmt}"
            filesinfo[sid] = {"infiles": [str(f)], "outfiles": [str(out_dir / name)]}
            _save(out_dir / name, sub, fmt, append)
    stat = {"min": min(times), "max": max(times), "mean": float(np.mean(times)), "median": float(np.median(times)),
            "percentile(99%)": float(np.percentile(times, 99))}
    summary = {"filesinfo": filesinfo}
    if layout == "current":
        summary["args"] = ["ais_bench", "--model", f"onnx_alexnet_bs{batch}.om", "--batchsize", str(batch)]
        summary.update({"NPU_compute_time": {**stat, "count": len(times)},
                        "H2D_latency": {**stat, "count": len(times)}, "D2H_latency": {**stat, "count": len(times)},
                        "throughput": 1000 * batch / stat["mean"], "npu_compute_time_list": times, "pid": 1234})
        (output / f"{dirname}_summary.json").write_text(json.dumps(summary))
    else:
        summary.update({"NPU_compute_time": stat, "H2D_latency": stat, "D2H_latency": stat,
                        "throughput": 1000 * batch / stat["mean"]})
        (out_dir / "sumary.json").write_text(json.dumps(summary))
    return out_dir


def independent_topk(results: Path, labels: Path, env: Env, layout: str) -> tuple[int, list[int]]:
    """Read the result files without the library and count Top-k by strict rank (no ties in this data)."""
    lab = {}
    for line in labels.read_text().splitlines():
        name, value = line.split()
        lab[name.split(".")[0]] = int(value)
    hits = [0] * 5
    files = sorted(f for f in os.listdir(results) if f != "sumary.json")
    if layout == "old":
        info = json.loads((results / "sumary.json").read_text())["filesinfo"]
        by_out = {os.path.basename(v["outfiles"][0]): os.path.basename(v["infiles"][0]).split(".")[0]
                  for v in info.values()}
    for f in files:
        path = results / f
        if f.endswith(".txt"):
            row = np.array([float(t) for t in path.read_text().splitlines()[0].split()], np.float32)
        elif f.endswith(".bin"):
            row = np.fromfile(path, np.float32)
        else:
            row = np.load(path).reshape(-1)
        name = by_out[f] if layout == "old" else f.split(".")[0].rsplit("_", 1)[0]
        rank = int((row > row[lab[name]]).sum())
        for k in range(rank, 5):
            hits[k] += 1
    return len(files), hits


def expected_result_json(n: int, hits: list[int]) -> bytes:
    """vision_metric's result.json, spelled out by hand (not through json) to pin the exact bytes."""
    parts = [f'{{"key": "Number of images", "value": "{n}"}}',
             f'{{"key": "Number of classes", "value": "{N_CLASSES}"}}']
    parts += [f'{{"key": "Top{k + 1} accuracy", "value": "{round(100 * h / n, 2)}%"}}' for k, h in enumerate(hits)]
    return ('{"title": "Overall statistical evaluation", "value": [' + ", ".join(parts) + "]}").encode()


# --------------------------------------------------------------------------- export


def test_exported_onnx_matches_modelzoo_contract(env: Env, run_cli, tmp_path: Path, one_line_error) -> None:
    import onnx

    out = tmp_path / "alexnet.onnx"
    r = run_cli("ascend", "export", env.checkpoint, "-o", out)
    assert r.exit_code == 0, r.stderr
    m = onnx.load(str(out))
    assert {o.domain: o.version for o in m.opset_import}[""] == 11
    init = {t.name for t in m.graph.initializer}
    ins = [i for i in m.graph.input if i.name not in init]
    assert [i.name for i in ins] == ["actual_input_1"] and [o.name for o in m.graph.output] == ["output1"]
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(ins[0]) == ["-1", 3, 224, 224]
    assert dims(m.graph.output[0]) == ["-1", N_CLASSES]
    assert json.loads((tmp_path / "alexnet.onnx.json").read_text())["extra"]["export"]["opset"] == 11
    before = out.read_bytes()
    one_line_error(run_cli("ascend", "export", env.checkpoint, "-o", out), "already exists")
    assert out.read_bytes() == before
    assert run_cli("ascend", "export", env.checkpoint, "-o", out, "--force").exit_code == 0


def test_export_from_bare_torchvision_state_dict(env: Env, tmp_path: Path) -> None:
    """A torchvision alexnet-owt-*.pth has no sidecar: the export derives the class count from it."""
    import onnxruntime as ort
    import torchvision

    from alexnet_tvm.interface.ascend import export_onnx

    tv = torchvision.models.alexnet(num_classes=7).eval()
    pth = tmp_path / "alexnet-owt-test.pth"
    torch.save(tv.state_dict(), pth)
    res = export_onnx(pth, tmp_path / "alexnet.onnx")
    assert res.num_classes == 7 and res.max_abs_error < 1e-4
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    got = ort.InferenceSession(str(tmp_path / "alexnet.onnx"),
                               providers=["CPUExecutionProvider"]).run(["output1"], {"actual_input_1": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, tv(torch.from_numpy(x)).numpy(), atol=1e-4)


# --------------------------------------------------------------------------- atc


def test_atc_cmd(run_cli, tmp_path: Path, one_line_error) -> None:
    script = tmp_path / "pth2om.sh"
    r = run_cli("ascend", "atc-cmd", "-o", script)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [re.search(r"_bs(\d+) ", ln).group(1) for ln in lines] == ["1", "4", "8", "16", "32", "64"]
    assert lines[3] == ('atc --model=./alexnet.onnx --framework=5 --output=./onnx_alexnet_bs16 --input_format=NCHW '
                        '--input_shape="actual_input_1:16,3,224,224" --log=debug --soc_version=Ascend310P3')
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n") and all(ln in text for ln in lines)
    assert os.access(script, os.X_OK)
    r = run_cli("ascend", "atc-cmd", "--batch", "1,16", "--soc", "Ascend310", "-o", script, "--force")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 2
    assert r.stdout.splitlines()[1].endswith('"actual_input_1:16,3,224,224" --log=debug --soc_version=Ascend310')
    one_line_error(run_cli("ascend", "atc-cmd", "--batch", "0", "-o", tmp_path / "x.sh"), "at least 1")
    one_line_error(run_cli("ascend", "atc-cmd", "--batch", "4x", "-o", tmp_path / "x.sh"), "4x")
    one_line_error(run_cli("ascend", "atc-cmd", "--soc", "rm -rf", "-o", tmp_path / "x.sh"), "soc")
    one_line_error(run_cli("ascend", "atc-cmd", "-o", script), "already exists")


# --------------------------------------------------------------------------- preprocess and labels


def test_preprocess_is_the_modelzoo_transform(env: Env, run_cli, tmp_path: Path, one_line_error) -> None:
    """Byte-identical to torchvision's Resize(256)/CenterCrop(224)/ToTensor/Normalize on .convert('RGB')."""
    from torchvision import transforms

    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                             transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    assert sorted(os.listdir(env.inputs)) == sorted(n.split(".")[0] + ".bin" for n in IMAGES)
    for name, (_, _, cls) in IMAGES.items():
        want = tf(Image.open(env.images / cls / name).convert("RGB")).numpy()
        path = env.inputs / (name.split(".")[0] + ".bin")
        assert path.stat().st_size == BIN_BYTES
        np.testing.assert_array_equal(np.fromfile(path, np.float32).reshape(3, 224, 224), want)
    # the CLI, on a flat folder; refuses to overwrite; refuses two images with one name
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(env.images / "bee" / "photo.b.jpeg", flat / "photo.b.jpeg")
    (flat / "README.txt").write_text("not an image")
    r = run_cli("ascend", "preprocess", flat, tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    assert os.listdir(tmp_path / "out") == ["photo.bin"]
    assert (tmp_path / "out" / "photo.bin").read_bytes() == (env.inputs / "photo.bin").read_bytes()
    one_line_error(run_cli("ascend", "preprocess", flat, tmp_path / "out"), "already exists")
    shutil.copy(env.images / "ant" / "img_1.png", flat / "photo.png")
    one_line_error(run_cli("ascend", "preprocess", flat, tmp_path / "out2"), "photo", "both map")
    assert not (tmp_path / "out2").exists()


def test_inputs_loader(env: Env, tmp_path: Path) -> None:
    names, x = A.load_bin_inputs(env.inputs)
    assert names == env.names and x.shape == (13, 3, 224, 224) and x.dtype == np.float32
    batches = list(A.iter_bin_batches(env.inputs, batch_size=5))
    assert [len(b[0]) for b in batches] == [5, 5, 3]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), x)
    bad = tmp_path / "bad"
    shutil.copytree(env.inputs, bad)
    with open(bad / "b.bin", "ab") as f:
        f.write(b"\0\0\0\0")
    with pytest.raises(AscendError, match=r"b\.bin: 602116 bytes, expected 602112"):
        A.load_bin_inputs(bad)
    shutil.copy(env.inputs / "c.bin", bad / "b.bin")
    arr = np.fromfile(bad / "c.bin", np.float32)
    arr[7] = np.nan
    arr.tofile(bad / "c.bin")
    with pytest.raises(AscendError, match=r"c\.bin: non-finite input value: nan at element 7"):
        A.load_bin_inputs(bad)


def test_labels_command(env: Env, run_cli, tmp_path: Path, one_line_error) -> None:
    out = tmp_path / "val_label.txt"
    r = run_cli("ascend", "labels", env.images, "-o", out)
    assert r.exit_code == 0, r.stderr
    got = dict(line.split() for line in out.read_text().splitlines())
    assert got == {n: str(["ant", "bee", "cat"].index(c)) for n, (_, _, c) in IMAGES.items()}
    assert A.read_labels(out).labels == {n.split(".")[0]: ["ant", "bee", "cat"].index(c)
                                         for n, (_, _, c) in IMAGES.items()}
    one_line_error(run_cli("ascend", "labels", env.images, "-o", out), "already exists")


@pytest.mark.parametrize("text, fragment", [
    ("a.JPEG 1\nb.JPEG\n", "val.txt:2: expected 'NAME LABEL'"),
    ("a.JPEG 1\nb.JPEG x\n", "val.txt:2: label 'x'"),
    ("a.JPEG 1\nb.JPEG -3\n", "val.txt:2: label '-3'"),
    ("a.JPEG 1\nb.JPEG 2 7\n", "val.txt:2: expected 'NAME LABEL'"),
    ("a.JPEG 1\na.png 2\n", "val.txt:2: a is labelled 2 here and 1 on line 1"),
    ("\n\n", "val.txt: no labels"),
])
def test_bad_label_files(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "val.txt").write_text(text)
    with pytest.raises(DatasetError) as e:  # a label file is data, not Ascend-specific
        A.read_labels(tmp_path / "val.txt")
    assert fragment in str(e.value)


def test_label_file_tolerances_are_counted(tmp_path: Path) -> None:
    (tmp_path / "val.txt").write_text("a.JPEG 1\r\n\nb.JPEG 2\na.JPEG 1\n")
    lab = A.read_labels(tmp_path / "val.txt")
    assert lab.labels == {"a": 1, "b": 2}
    assert any("1 blank" in w for w in lab.warnings) and any("1 repeated" in w for w in lab.warnings)


# --------------------------------------------------------------------------- results and metric


@pytest.mark.parametrize("fmt, layout, batch", [
    ("txt", "current", 4), ("bin", "current", 1), ("npy", "current", 8),
    ("txt", "old", 8), ("bin", "old", 4), ("npy", "old", 1),
])
def test_metric_equals_independent_topk(env: Env, run_cli, tmp_path: Path, fmt: str, layout: str,
                                        batch: int) -> None:
    out = ais_bench(env, tmp_path / "output", "subdir", fmt=fmt, batch=batch, layout=layout)
    assert len(os.listdir(out)) == 13 + (layout == "old")  # pads were not written
    res = A.load_results(out, N_CLASSES)
    assert (res.fmt, res.layout, res.names) == (fmt, layout, env.names)
    ref = np.stack([env.ref[n] for n in env.names])
    if fmt == "txt":
        np.testing.assert_allclose(res.logits, ref, rtol=0, atol=A.om_tolerance(res, atol=0))
    else:
        np.testing.assert_array_equal(res.logits, ref)
    assert res.perf()["throughput"] == pytest.approx(1000 * batch / np.mean([1.0 + 0.1 * i
                                                                           for i in range(-(-13 // batch))]))

    r = run_cli("ascend", "metric", out, "--labels", env.ranked_labels, "-o", tmp_path / "result.json")
    assert r.exit_code == 0, r.stderr
    n, hits = independent_topk(out, env.ranked_labels, env, layout)
    designed = [sum(1 for rk in RANKS if rk < k) for k in range(1, 6)]
    assert (n, hits) == (13, designed)
    assert (tmp_path / "result.json").read_bytes() == expected_result_json(n, hits)
    assert r.stdout.splitlines()[2] == f"Top1 accuracy: {round(100 * hits[0] / 13, 2)}%"

    # the comparison the verify gate builds on: eager PyTorch stands in for TVM
    rep = A.compare_to_om(env.eager, res, A.read_labels(env.ranked_labels).labels, names=env.names)
    assert rep["within_tolerance"] and rep["top1_match_rate"] == 1.0 and rep["mean_top5_overlap"] == 1.0
    assert rep["accuracy"]["om"] == {"top1": hits[0] / 13, "top5": hits[4] / 13}
    assert rep["tolerance"] > (A.TXT_ROUNDING if fmt == "txt" else 0)


def test_read_command_reports_perf(env: Env, run_cli, tmp_path: Path) -> None:
    out = ais_bench(env, tmp_path / "output", "run", fmt="bin", batch=4)
    r = run_cli("ascend", "read", out)
    assert r.exit_code == 0, r.stderr
    assert "13 results x 10 classes (BIN, current layout)" in r.stdout
    assert re.search(r"throughput: [\d.]+ fps \(batch 4\)", r.stdout) and "NPU compute time (ms): mean" in r.stdout
    rep = json.loads(run_cli("ascend", "read", out, "--json").stdout)
    assert rep["n_images"] == 13 and rep["perf"]["batchsize"] == 4


def test_appended_txt_reruns_use_the_first_line(env: Env, tmp_path: Path) -> None:
    out = ais_bench(env, tmp_path / "o", "2022_07_09-17_36_18", fmt="txt", batch=4, layout="old", append=True)
    ais_bench(env, tmp_path / "o", "2022_07_09-17_36_18", fmt="txt", batch=8, layout="old", append=True)
    assert all(len((out / f).read_text().splitlines()) == 2 for f in os.listdir(out) if f.endswith(".txt"))
    res = A.load_results(out)
    assert res.num_classes == N_CLASSES and res.names == env.names
    assert any("13 TXT results hold more than one line" in w and "differ" not in w for w in res.warnings)
    # a re-run with different numbers: still the first line, and the disagreement is counted
    ais_bench(env, tmp_path / "o", "2022_07_09-17_36_18", fmt="txt", batch=8, layout="old", append=True,
              perturb=1.0)
    res2 = A.load_results(out)
    np.testing.assert_array_equal(res2.logits, res.logits)
    assert any("in 13 of them the later lines differ" in w for w in res2.warnings)
    _, _, top = A.evaluate_results(out, env.ranked_labels)
    assert list(top.hits.astype(int)) == [sum(1 for rk in RANKS if rk == k) for k in range(5)]


def test_old_layout_without_summary_is_named_by_the_inputs(env: Env, run_cli, tmp_path: Path) -> None:
    out = ais_bench(env, tmp_path / "o", "old", fmt="bin", batch=4, layout="old")
    (out / "sumary.json").unlink()
    res = A.load_results(out)
    assert res.names[:3] == ["sample_id_0", "sample_id_1", "sample_id_2"] and res.numbered
    assert any("known by number" in w for w in res.warnings)
    named = A.load_results(out, N_CLASSES, input_names=A.list_bin_inputs(env.inputs)[0])
    assert named.names == env.names and not named.warnings
    np.testing.assert_array_equal(named.logits, np.stack([env.ref[n] for n in env.names]))
    r = run_cli("ascend", "metric", out, "--labels", env.ranked_labels, "--inputs", env.inputs)
    assert r.exit_code == 0, r.stderr
    assert f"Top5 accuracy: {round(100 * sum(1 for rk in RANKS if rk < 5) / 13, 2)}%" in r.stdout


def test_several_devices(env: Env, tmp_path: Path) -> None:
    files = [env.inputs / f for f in _natural(os.listdir(env.inputs))]
    out = tmp_path / "o" / "sub"
    ais_bench(env, out, "device0", fmt="npy", batch=4, files=files[:7])
    ais_bench(env, out, "device1", fmt="npy", batch=4, files=files[7:])
    res = A.load_results(out, N_CLASSES, input_names=env.names)
    assert res.names == env.names
    perf = res.perf()
    assert perf["throughput"] == pytest.approx(sum(p["throughput"] for p in perf["devices"].values()))


# --------------------------------------------------------------------------- bad results


@pytest.fixture
def bin_run(env: Env, tmp_path: Path) -> Path:
    return ais_bench(env, tmp_path / "output", "subdir", fmt="bin", batch=4)


def _metric(run_cli, out: Path, env: Env, *extra):
    return run_cli("ascend", "metric", out, "--labels", env.ranked_labels, *extra)


def test_missing_result_listed_in_summary(env: Env, bin_run: Path, run_cli, one_line_error) -> None:
    (bin_run / "b_0.bin").unlink()
    one_line_error(_metric(run_cli, bin_run, env), "b_0.bin: missing", "subdir_summary.json")


def test_missing_result_without_summary_needs_the_inputs(env: Env, bin_run: Path, run_cli, one_line_error) -> None:
    (bin_run / "b_0.bin").unlink()
    (bin_run.parent / "subdir_summary.json").unlink()
    one_line_error(_metric(run_cli, bin_run, env, "--inputs", env.inputs), "no result for input b",
                   "expected b_0.bin")
    res = A.load_results(bin_run)  # without the inputs: the labelled image without a result is counted
    top = A.vision_metric_topk(res.logits, res.names, A.read_labels(env.ranked_labels).labels)
    assert any("1 labelled images have no result" in w for w in top.warnings) and top.n_images == 12


@pytest.mark.parametrize("name, fragment", [
    ("notes.md", "notes.md: unexpected file"),
    ("zzz_0.bin", "zzz_0.bin: not in"),
    ("img_1_1.bin", "output index 1, but AlexNet has one output"),
    ("foo.bin", "foo.bin: not an ais_bench result name"),
    ("img_1_0.txt", "mixed result formats (13 .bin, 1 .txt)"),
    (".DS_Store", ".DS_Store: unexpected file"),
])
def test_extra_or_misnamed_files(env: Env, bin_run: Path, run_cli, one_line_error, name: str,
                                 fragment: str) -> None:
    shutil.copy(bin_run / "img_1_0.bin", bin_run / name)
    one_line_error(_metric(run_cli, bin_run, env), fragment)


def test_wrong_size_nan_and_bad_txt(env: Env, bin_run: Path, tmp_path: Path, run_cli, one_line_error) -> None:
    good = (bin_run / "c_0.bin").read_bytes()
    (bin_run / "c_0.bin").write_bytes(good[:-4])
    one_line_error(_metric(run_cli, bin_run, env, "--classes", "10"), "c_0.bin: 36 bytes, expected 40")
    (bin_run / "c_0.bin").write_bytes(good[:20])
    one_line_error(_metric(run_cli, bin_run, env, "--classes", "10"), "c_0.bin: 20 bytes", "float16")
    row = np.frombuffer(good, np.float32).copy()
    row[3] = np.nan
    row.tofile(bin_run / "c_0.bin")
    one_line_error(_metric(run_cli, bin_run, env), "c_0.bin: non-finite output: nan at element 3")

    txt = ais_bench(env, tmp_path / "t", "run", fmt="txt", batch=4)
    line = (txt / "a9_0.txt").read_text().split("\n")[0].split()
    (txt / "a9_0.txt").write_text(" ".join(line[:9]) + " \n")
    one_line_error(_metric(run_cli, txt, env, "--classes", "10"), "a9_0.txt: first line has 9 values, expected 10")
    (txt / "a9_0.txt").write_text(" ".join(line[:4] + ["1.0e", *line[5:]]) + " \n")
    one_line_error(_metric(run_cli, txt, env), "a9_0.txt: value 4 '1.0e' is not a number")
    (txt / "a9_0.txt").write_text("\n" + " ".join(line) + " \n")
    one_line_error(_metric(run_cli, txt, env), "a9_0.txt: empty first line")

    npy = ais_bench(env, tmp_path / "n", "run", fmt="npy", batch=4)
    np.save(npy / "b_0.npy", np.zeros((1, 10), np.int32))
    one_line_error(_metric(run_cli, npy, env), "b_0.npy: dtype int32")
    np.save(npy / "b_0.npy", np.zeros((2, 10), np.float32))
    one_line_error(_metric(run_cli, npy, env), "b_0.npy: shape (2, 10)")


def test_results_and_labels_must_match(env: Env, bin_run: Path, tmp_path: Path, run_cli, one_line_error) -> None:
    labels = tmp_path / "partial.txt"
    labels.write_text("".join(ln + "\n" for ln in env.ranked_labels.read_text().splitlines()
                              if not ln.startswith("d.")))
    one_line_error(run_cli("ascend", "metric", bin_run, "--labels", labels), "d: no label in")
    # inputs that are not the run's inputs
    other = tmp_path / "other_inputs"
    shutil.copytree(env.inputs, other)
    shutil.copy(other / "b.bin", other / "new.bin")
    one_line_error(_metric(run_cli, bin_run, env, "--inputs", other), "no result for input new")
    (other / "new.bin").unlink()
    (other / "b.bin").unlink()
    one_line_error(_metric(run_cli, bin_run, env, "--inputs", other), "b_0.bin: result for 'b'",
                   "not among the inputs")
    res = A.load_results(bin_run)
    with pytest.raises(AscendError, match="no result for input"):
        A.compare_to_om(env.eager[:12], res, names=env.names[:11] + ["nope"])
    with pytest.raises(AscendError, match=r"TVM logits \(12, 10\) vs OM results \(13, 10\)"):
        A.compare_to_om(env.eager[:12], res)
    # labels beyond the output size are misses, as in vision_metric, and counted
    big = tmp_path / "big.txt"
    big.write_text("".join(f"{n}.JPEG {11 if i == 0 else 0}\n" for i, n in enumerate(env.names)))
    top = A.vision_metric_topk(res.logits, res.names, A.read_labels(big).labels)
    assert any("1 labels lie outside the 10 output classes" in w for w in top.warnings)


def test_unreadable_summary_is_a_counted_warning(env: Env, bin_run: Path, run_cli) -> None:
    """vision_metric never reads the summary: a damaged one is reported and ignored, not fatal."""
    spath = bin_run.parent / "subdir_summary.json"
    summary = json.loads(spath.read_text())
    summary["filesinfo"]["3"] = {"infiles": "oops"}
    spath.write_text(json.dumps(summary))
    res = A.load_results(bin_run)
    assert res.perf()["throughput"] > 0 and any("malformed filesinfo entry '3'" in w for w in res.warnings)
    spath.write_text("{truncated")
    res = A.load_results(bin_run)
    assert res.summary is None and any("unreadable summary ignored" in w for w in res.warnings)
    r = run_cli("ascend", "read", bin_run)
    assert r.exit_code == 0 and "summary: none" in r.stdout


def test_unexpected_folders(env: Env, bin_run: Path, run_cli, one_line_error) -> None:
    (bin_run / "device0").mkdir()
    one_line_error(run_cli("ascend", "read", bin_run), "_0.bin: unexpected file beside the device folders")
    (bin_run / "device0").rmdir()
    (bin_run / "extra").mkdir()
    one_line_error(run_cli("ascend", "read", bin_run), "extra: unexpected folder")
    one_line_error(run_cli("ascend", "read", bin_run / "nope"), "no such results folder")


def test_compare_flags_a_different_model(env: Env, bin_run: Path) -> None:
    res = A.load_results(bin_run)
    rep = A.compare_to_om(env.eager + 1e-3, res)
    assert not rep["within_tolerance"] and rep["max_abs_diff"] == pytest.approx(1e-3, rel=0.05)
    assert rep["top1_match_rate"] == 1.0
    swapped = env.eager[:, ::-1].copy()
    rep = A.compare_to_om(swapped, res)
    assert rep["top1_match_rate"] < 0.5 and rep["top1_mismatches"]


def test_metric_1001_classes_and_tiny_outputs() -> None:
    """vision_metric shifts labels by one for 1001-way outputs and reports min(classes, 5) Top-k rows."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 1001)).astype(np.float32)
    names = ["a", "b", "c", "d"]
    labels = {n: int(np.argmax(logits[i])) - 1 for i, n in enumerate(names)}
    top = A.vision_metric_topk(logits, names, labels)
    assert top.top(1) == 1.0 and top.table()["value"][1] == {"key": "Number of classes", "value": "1001"}
    small = A.vision_metric_topk(np.array([[3, 2, 1], [1, 3, 2], [2, 1, 3]], np.float32), ["x", "y", "z"],
                                 {"x": 0, "y": 2, "z": 1})  # ranks 0, 1, 2
    assert small.to_json() == ('{"title": "Overall statistical evaluation", "value": [{"key": "Number of images", '
                               '"value": "3"}, {"key": "Number of classes", "value": "3"}, {"key": "Top1 accuracy", '
                               '"value": "33.33%"}, {"key": "Top2 accuracy", "value": "66.67%"}, '
                               '{"key": "Top3 accuracy", "value": "100.0%"}]}')


def test_result_json_refuses_overwrite(env: Env, bin_run: Path, run_cli, tmp_path: Path, one_line_error) -> None:
    out = tmp_path / "result.json"
    out.write_text("keep")
    one_line_error(_metric(run_cli, bin_run, env, "-o", out), "already exists")
    assert out.read_text() == "keep"
    with pytest.raises(OutputExistsError):
        A.write_result_json(out, A.vision_metric_topk(np.eye(3, dtype=np.float32), ["x", "y", "z"],
                                                      {"x": 0, "y": 1, "z": 2}))


def test_ties_break_as_vision_metric_does() -> None:
    """TXT rounding makes ties; each row is ranked with vision_metric's own call, np.argsort(-row)."""
    rng = np.random.default_rng(3)
    logits = np.round(rng.standard_normal((40, 1000)), 1).astype(np.float32)  # many ties
    names = [f"n{i}" for i in range(40)]
    labels = {n: int(np.argsort(-logits[i])[i % 7]) for i, n in enumerate(names)}
    hits = np.zeros(5)
    for i, n in enumerate(names):  # the per-file loop of vision_metric, row by row
        order = np.argsort(-logits[i])
        for k in range(5):
            if order[k] == labels[n]:
                hits[k] += 1
                break
    np.testing.assert_array_equal(A.vision_metric_topk(logits, names, labels).hits, hits)


# --------------------------------------------------------------------------- verify --against ascend:


def test_verify_against_ascend_needs_inputs(env: Env, run_cli, tmp_path: Path, one_line_error) -> None:
    """Refused before the artifact is opened, so no build is needed: the path need not even exist."""
    results = ais_bench(env, tmp_path / "out", "run", fmt="txt", batch=4)
    one_line_error(run_cli("verify", tmp_path / "never-built", "--against", f"ascend:{results}"), "--inputs")


#: the artifact below is an untuned build (no records fit this width-1/8 model): ~50 s of LLVM on
#: a Xeon, so the tests that need it are slow (make test-all), not in the fast suite
@pytest.fixture(scope="module")
def tvm_artifact(env: Env) -> Path:
    from alexnet_tvm.compile.build import BuildConfig, build

    spec = repo_targets()["x86-avx2"]
    out = env.root / "tvm-artifact"
    build(BuildConfig(model=env.checkpoint, target=spec, out=out, logs_dir=env.root / "logs", batch=4))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("fmt,layout", [("txt", "current"), ("bin", "old"), ("npy", "current")])
def test_verify_against_ascend_passes_for_the_matching_artifact(env: Env, tvm_artifact: Path, run_cli,
                                                               tmp_path: Path, fmt: str, layout: str) -> None:
    results = ais_bench(env, tmp_path / "out", "run", fmt=fmt, batch=4, layout=layout)
    res = run_cli("verify", tvm_artifact, "--against", f"ascend:{results}", "--inputs", env.inputs,
                  "--labels", env.ranked_labels, "--report", tmp_path / "rep.json", "--junit", tmp_path / "j.xml")
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "rep.json").read_text())
    assert rep["passed"] and rep["labelled"]["images"] == len(env.names)
    assert rep["labelled"]["top1_agreement"] == 1.0
    assert rep["extra"]["ascend"]["mean_top5_overlap"] == 1.0
    acc = rep["extra"]["ascend"]["accuracy"]
    assert acc["tvm"]["top1"] == acc["om"]["top1"]
    assert 'failures="0"' in (tmp_path / "j.xml").read_text()


@pytest.mark.slow
def test_verify_against_ascend_fails_for_another_model(env: Env, tvm_artifact: Path, run_cli, tmp_path: Path) -> None:
    results = ais_bench(env, tmp_path / "out", "run", fmt="txt", batch=4, perturb=0.5)
    res = run_cli("verify", tvm_artifact, "--against", f"ascend:{results}", "--inputs", env.inputs)
    assert res.exit_code == 1, res.output
    assert "max abs error" in res.output and "FAILED" in res.output


"""The Open Inference Protocol's REST shapes, with the binary tensor data extension.

A request body is either one JSON object, or (binary extension) a JSON header of
``Inference-Header-Content-Length`` bytes followed by the raw little-endian tensors of
the inputs whose ``parameters.binary_data_size`` says so, in input order. Outputs come
back as JSON ``data`` unless the request asks for binary (``binary_data`` on an output,
or ``binary_data_output`` on the request, which tritonclient sets when it names no
outputs). Everything a client can get wrong here is a :class:`BadRequest` (400).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from alexnet_tvm import __version__

from .errors import BadRequest
from .models import DATATYPE, OUTPUT_NAME, ServedModel

HEADER_LENGTH = "Inference-Header-Content-Length"
SERVER_NAME = "alexnet-tvm"
EXTENSIONS = ["binary_tensor_data", "classification", "metrics"]


@dataclass
class InferRequest:
    """A decoded infer request: the rows to run and how the answer should be encoded."""

    x: np.ndarray
    id: str | None = None
    binary_output: bool = False
    outputs: list[str] = field(default_factory=lambda: [OUTPUT_NAME])


def server_metadata() -> dict:
    return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}


def model_metadata(model: ServedModel) -> dict:
    """Inputs and outputs with a variable batch dimension (-1): any count of rows is accepted."""
    return {
        "name": model.name, "versions": [model.version], "platform": "tvm_relax",
        "inputs": [{"name": model.input_name, "datatype": DATATYPE, "shape": [-1, *model.row_shape]}],
        "outputs": [{"name": OUTPUT_NAME, "datatype": DATATYPE, "shape": [-1, model.num_classes]}],
        "parameters": {"batch_sizes": model.batches, "target": model.target},
    }


def _split_body(body: bytes | memoryview, header_length: str | None) -> tuple[dict, memoryview]:
    """The JSON part and the binary tail (empty without the extension header)."""
    size = len(body)
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise BadRequest(f"{HEADER_LENGTH} is not an integer: {header_length[:40]!r}") from None
        if not 0 < size <= len(body):
            raise BadRequest(f"{HEADER_LENGTH} {size} is outside the body's {len(body)} bytes")
    try:
        head = json.loads(bytes(body[:size]))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(f"the request is not valid JSON ({e})") from None
    except RecursionError:  # [[[[...]]]] 100,000 deep: the parser's recursion, not a server fault
        raise BadRequest("the request's JSON is nested too deeply") from None
    if not isinstance(head, dict):
        raise BadRequest("the request must be a JSON object")
    return head, memoryview(body)[size:]


def _shape(tensor: dict, model: ServedModel) -> tuple[int, ...]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise BadRequest(f"input {tensor.get('name')!r}: shape must be a list of integers, got {shape!r}")
    want = list(model.row_shape)
    if len(shape) != len(want) + 1 or shape[1:] != want or shape[0] < 1:
        raise BadRequest(f"input {tensor.get('name')!r}: shape {shape} does not match [N, {', '.join(map(str, want))}]"
                         f" with N >= 1")
    if shape[0] > model.max_batch:
        raise BadRequest(f"input {tensor.get('name')!r}: {shape[0]} rows, at most {model.max_batch} per request")
    return tuple(shape)


def _binary_size(tensor: dict) -> int | None:
    params = tensor.get("parameters") or {}
    if not isinstance(params, dict):
        raise BadRequest(f"input {tensor.get('name')!r}: parameters must be an object")
    size = params.get("binary_data_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise BadRequest(f"input {tensor.get('name')!r}: binary_data_size must be a non-negative integer")
    return size


def _tensor_data(tensor: dict, shape: tuple[int, ...], tail: memoryview) -> np.ndarray:
    """The input's values from the binary tail or from JSON ``data``, as float32 of ``shape``."""
    count = int(np.prod(shape))
    size = _binary_size(tensor)
    if size is not None:
        if size != 4 * count or len(tail) != size:
            raise BadRequest(f"input {tensor.get('name')!r}: binary_data_size {size} and {len(tail)} bytes after "
                             f"the header; shape {list(shape)} of FP32 needs {4 * count}")
        # no copy: the server's body buffer is writable and aligned here (routes.read_body), so a lone
        # request is lent to the library as it is; bytes give a read-only array, copied once later
        return np.frombuffer(tail, dtype="<f4").reshape(shape)
    if "data" not in tensor:
        raise BadRequest(f"input {tensor.get('name')!r}: neither data nor binary_data_size")
    try:
        arr = np.asarray(tensor["data"], dtype=np.float32)
    except (TypeError, ValueError, RecursionError) as e:
        raise BadRequest(f"input {tensor.get('name')!r}: data is not numeric ({str(e)[:80]})") from None
    if arr.size != count:
        raise BadRequest(f"input {tensor.get('name')!r}: {arr.size} values, shape {list(shape)} needs {count}")
    return arr.reshape(shape)


def _requested_outputs(head: dict) -> tuple[list[str], bool]:
    """Output names and whether they go back binary."""
    params = head.get("parameters") or {}
    binary = bool(isinstance(params, dict) and params.get("binary_data_output"))
    outputs = head.get("outputs")
    if outputs is None:
        return [OUTPUT_NAME], binary
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise BadRequest("outputs must be a list of objects")
    names = []
    for o in outputs:
        if o.get("name") != OUTPUT_NAME:
            raise BadRequest(f"unknown output {o.get('name')!r}; this model has {OUTPUT_NAME!r}")
        names.append(OUTPUT_NAME)
        binary = binary or bool((o.get("parameters") or {}).get("binary_data"))
    return names, binary


def parse_infer(body: bytes | memoryview, header_length: str | None, model: ServedModel) -> InferRequest:
    """Decode and check an infer body against ``model`` (one FP32 input of [N, *row_shape])."""
    head, tail = _split_body(body, header_length)
    inputs = head.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadRequest(f"inputs must be a list of one tensor, {model.input_name!r}")
    tensor = inputs[0]
    if tensor.get("name") != model.input_name:
        raise BadRequest(f"unknown input {tensor.get('name')!r}; this model takes {model.input_name!r}")
    if tensor.get("datatype") != DATATYPE:
        raise BadRequest(f"input {model.input_name!r}: datatype {tensor.get('datatype')!r}, expected {DATATYPE}")
    shape = _shape(tensor, model)
    x = _tensor_data(tensor, shape, tail)
    if _binary_size(tensor) is None and len(tail):
        raise BadRequest(f"{len(tail)} bytes after the header that no input claims")
    names, binary = _requested_outputs(head)
    rid = head.get("id")
    return InferRequest(x=x, id=str(rid) if rid is not None else None, binary_output=binary, outputs=names)


def encode_infer(req: InferRequest, model: ServedModel, logits: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers (binary: JSON header, then the raw logits)."""
    out: dict = {"name": OUTPUT_NAME, "datatype": DATATYPE, "shape": list(logits.shape)}
    raw = np.ascontiguousarray(logits, dtype="<f4").tobytes()
    if req.binary_output:
        out["parameters"] = {"binary_data_size": len(raw)}
    else:
        out["data"] = logits.astype(np.float32).ravel().tolist()
    head: dict = {"model_name": model.name, "model_version": model.version, "outputs": [out]}
    if req.id is not None:
        head["id"] = req.id
    text = json.dumps(head, separators=(",", ":")).encode()
    if not req.binary_output:
        return text, {"Content-Type": "application/json"}
    return text + raw, {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(text))}


def encode_binary_request(x: np.ndarray, input_name: str) -> tuple[bytes, dict[str, str]]:
    """A binary-extension infer body for ``x`` asking for binary logits (what serve-bench sends)."""
    raw = np.ascontiguousarray(x, dtype="<f4").tobytes()
    head = {"inputs": [{"name": input_name, "shape": list(x.shape), "datatype": DATATYPE,
                        "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [{"name": OUTPUT_NAME, "parameters": {"binary_data": True}}]}
    text = json.dumps(head).encode()
    return text + raw, {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(text))}


def decode_binary_response(body: bytes, header_length: str) -> np.ndarray:
    """The logits of a binary answer (the inverse of :func:`encode_infer` with binary output)."""
    size = int(header_length)
    out = json.loads(body[:size])["outputs"][0]
    return np.frombuffer(body[size:], dtype="<f4").reshape(out["shape"])

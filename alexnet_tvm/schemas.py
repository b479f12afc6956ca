"""The one validator for the JSON files that travel with an artifact: manifest.json, pack.json, verify.json.

A pack's SHA256SUMS only proves that its files are the ones that were packed,
not that they are well formed: a manifest without ``input.shape`` or a
``verify.json`` holding a list used to crash publish, pull and artifact loading
with a ``KeyError`` deep inside. Every reader calls :func:`check_manifest`,
:func:`check_pack_meta` or :func:`check_verify_report` first, so a malformed
file is one typed error naming the file and the key, whoever reads it (a local
``predict``, ``publish``, ``pull`` or the HTTP server, which answers 400).

The schemas are small typed trees (:class:`Obj`, :class:`ListOf`, leaf checks)
rather than JSON Schema documents: the checks that matter most (shape against
class count, sha256 hex, plain file names) are relations a leaf check expresses
in one line. Unknown keys are allowed, so newer writers stay readable.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .artifact_format import FORMAT_VERSION, LIB, PARAMS
from .errors import ArtifactError, ToolkitError
from .meta import PRECISIONS

HEX64 = re.compile(r"^[0-9a-f]{64}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
PACK_FORMAT = 1

Check = Callable[[Any], str | None]


def plain_name(text: str) -> str:
    """``text`` as a :data:`PLAIN_NAME` (what packs, registries and file names accept): other
    characters become ``_``. ``build`` names a model this way, so ``my model.pt`` packs as ``my_model``."""
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", text).lstrip("._+-")
    return name or "model"


@dataclass(frozen=True)
class Leaf:
    """A value check: returns ``None`` when fine, else what the value should be."""

    check: Check


@dataclass(frozen=True)
class Obj:
    """A JSON object: required and optional keys, each with its own schema."""

    required: dict[str, Any] = field(default_factory=dict)
    optional: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ListOf:
    item: Any
    min_len: int = 0


@dataclass(frozen=True)
class Nullable:
    inner: Any


def _typed(*types: type, what: str, ok: Callable[[Any], bool] = lambda v: True) -> Leaf:
    def check(v: Any) -> str | None:
        good = isinstance(v, types) and not isinstance(v, bool) or (bool in types and isinstance(v, bool))
        return None if good and ok(v) else what
    return Leaf(check)


STR = _typed(str, what="a string")
BOOL = _typed(bool, what="true or false")
NUMBER = _typed(int, float, what="a number")
COUNT = _typed(int, what="a non-negative integer", ok=lambda v: v >= 0)
POSITIVE = _typed(int, what="a positive integer", ok=lambda v: v > 0)
NAME = _typed(str, what="a plain name (letters, digits, '.', '_', '-', '+')", ok=lambda v: bool(PLAIN_NAME.match(v)))
DIGEST_STR = _typed(str, what="sha256:<64 hex digits>", ok=lambda v: bool(DIGEST.match(v)))
SHAPE = ListOf(POSITIVE, min_len=1)
FINITE = _typed(int, float, what="a finite number", ok=lambda v: math.isfinite(v))
RGB = _typed(list, what="a list of 3 finite numbers",
             ok=lambda v: len(v) == 3 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                              and math.isfinite(x) for x in v))
RGB_POSITIVE = _typed(list, what="a list of 3 finite numbers above 0 (the input is divided by them)",
                      ok=lambda v: RGB.check(v) is None and all(x > 0 for x in v))
PRECISION = _typed(str, what=f"one of {', '.join(PRECISIONS)}", ok=lambda v: v in PRECISIONS)
#: the most values an artifact's input may hold: batch 256 at 1024x1024 pixels (1 GiB of float32),
#: far above any AlexNet; past it an edited manifest would have the loader allocate without bound
MAX_INPUT_VALUES = 256 * 3 * 1024 * 1024
ANY_OBJ = Obj()
FILES = _typed(dict, what=f"a mapping of plain file names to sha256 hex digests, with {LIB} and {PARAMS}",
               ok=lambda v: LIB in v and PARAMS in v
               and all(isinstance(k, str) and PLAIN_NAME.match(k) and isinstance(d, str) and HEX64.match(d)
                       for k, d in v.items()))

MANIFEST = Obj(
    required={
        "format_version": _typed(int, what=f"artifact format {FORMAT_VERSION}", ok=lambda v: v == FORMAT_VERSION),
        "input": Obj(required={"shape": SHAPE}, optional={"name": STR, "dtype": STR}),
        "output": Obj(required={"shape": SHAPE}, optional={"dtype": STR}),
        "meta": Obj(required={"num_classes": POSITIVE, "input_size": POSITIVE, "resize_size": POSITIVE,
                              "class_names": ListOf(STR), "arch": STR},
                    optional={"mean": RGB, "std": RGB_POSITIVE}),
        "target": Obj(required={"name": NAME},
                      optional={"kind": STR, "host_features": ListOf(STR), "tvm_target": STR, "runner": STR}),
        "tvm_version": STR,
        "files": FILES,
    },
    optional={"model": Obj(required={"name": STR}), "num_params": COUNT, "tuning": Nullable(ANY_OBJ),
              "precision": PRECISION},
)

COMPARISON = Obj(required={"images": COUNT, "max_abs_error": NUMBER, "top1_agreement": NUMBER},
                 optional={"max_rel_error": NUMBER, "abs_tolerance": NUMBER,
                           "accuracy_tvm": Nullable(NUMBER), "accuracy_reference": Nullable(NUMBER)})

VERIFY_REPORT = Obj(
    required={"passed": BOOL, "against": STR, "artifact_digest": DIGEST_STR, "images": COUNT,
              "failures": ListOf(STR)},
    optional={"artifact": STR, "random": Nullable(COMPARISON), "labelled": Nullable(COMPARISON),
              "gates": ANY_OBJ, "seconds": NUMBER, "extra": ANY_OBJ},
)

VERIFY_SUMMARY = Obj(required={"passed": BOOL, "against": STR},
                     optional={"images": Nullable(COUNT), "max_abs_error": Nullable(NUMBER),
                               "top1_agreement": Nullable(NUMBER), "accuracy": Nullable(NUMBER)})

PACK_META = Obj(
    required={"format": _typed(int, what=f"pack format {PACK_FORMAT}", ok=lambda v: v == PACK_FORMAT),
              "kind": STR, "created": STR, "model": NAME, "target": NAME, "batch": POSITIVE, "tvm_version": STR},
    optional={"verify": Nullable(VERIFY_SUMMARY), "tuning": Nullable(ANY_OBJ)},
)

INDEX_ENTRY = Obj(
    required={"model": STR, "target": STR, "batch": POSITIVE, "tvm_version": STR, "digest": DIGEST_STR,
              "size": COUNT, "created": STR, "file": STR},
    optional={"kind": STR, "host_features": ListOf(STR), "tvm_target": STR, "verify": Nullable(VERIFY_SUMMARY),
              "published": Nullable(STR), "signer": Nullable(STR)},
)


def _join(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else key


def _walk(value: Any, schema: Any, path: str) -> str | None:
    """The first problem in ``value`` as ``"key.path: what it should be"``, or ``None``."""
    here = path or "the file"
    if isinstance(schema, Nullable):
        return None if value is None else _walk(value, schema.inner, path)
    if isinstance(schema, Leaf):
        want = schema.check(value)
        return None if want is None else f"{here}: must be {want}"
    if isinstance(schema, ListOf):
        if not isinstance(value, list) or len(value) < schema.min_len:
            return f"{here}: must be a list" + (f" of at least {schema.min_len}" if schema.min_len else "")
        return next((p for i, v in enumerate(value) if (p := _walk(v, schema.item, _join(path, i)))), None)
    if not isinstance(value, dict):
        return f"{here}: must be an object"
    for key, sub in schema.required.items():
        if key not in value:
            return f"{_join(path, key)}: missing"
    for key, sub in (*schema.required.items(), *schema.optional.items()):
        if key in value and (problem := _walk(value[key], sub, _join(path, key))):
            return problem
    return None


def validate(value: Any, schema: Any, where: str, error: type[ToolkitError], what: str) -> dict:
    """``value`` when it fits ``schema``; else ``error("<where>: malformed <what>: <key>: <why>")``."""
    problem = _walk(value, schema, "")
    if problem:
        raise error(f"{where}: malformed {what}: {problem}")
    return value


def check_manifest(manifest: Any, where: str, error: type[ToolkitError] = ArtifactError) -> dict:
    """A well-formed artifact manifest whose shapes agree with its model description.

    The input shape is what the library is called with, so an edited one would
    reach TVM as a shape error; it must be ``[batch, 3, input_size, input_size]``
    and the output ``[batch, num_classes]``.
    """
    if isinstance(manifest, dict) and "format_version" in manifest and manifest["format_version"] != FORMAT_VERSION:
        raise error(f"{where}: artifact format {manifest['format_version']!r}, this runtime reads {FORMAT_VERSION}")
    validate(manifest, MANIFEST, where, error, "manifest")
    meta, shape = manifest["meta"], manifest["input"]["shape"]
    if math.prod(shape) > MAX_INPUT_VALUES:
        raise error(f"{where}: malformed manifest: input.shape {shape} holds more than {MAX_INPUT_VALUES} values")
    if len(meta["class_names"]) != meta["num_classes"]:
        raise error(f"{where}: malformed manifest: {len(meta['class_names'])} class names for "
                    f"{meta['num_classes']} classes")
    want_in = [shape[0], 3, meta["input_size"], meta["input_size"]]
    if shape != want_in:
        raise error(f"{where}: malformed manifest: input.shape {shape} disagrees with the model "
                    f"(expected {want_in})")
    want_out = [shape[0], meta["num_classes"]]
    if manifest["output"]["shape"] != want_out:
        raise error(f"{where}: malformed manifest: output.shape {manifest['output']['shape']} disagrees with "
                    f"the model (expected {want_out})")
    return manifest


def check_pack_meta(meta: Any, where: str, error: type[ToolkitError]) -> dict:
    return validate(meta, PACK_META, where, error, "pack.json")


def check_index_entry(entry: Any, where: str, error: type[ToolkitError]) -> dict:
    return validate(entry, INDEX_ENTRY, where, error, "index entry")


def check_verify_report(report: Any, where: str, error: type[ToolkitError]) -> dict:
    """A verify report as ``verify --report`` writes it: pass/fail, reference, artifact digest, image count."""
    return validate(report, VERIFY_REPORT, where, error, "verify report")

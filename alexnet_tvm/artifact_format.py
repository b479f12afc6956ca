"""The artifact folder's file names and format version: the contract between ``build``
(compile/, which writes it) and the runtime (runtime/, which reads it).

Core, so that neither side imports the other to agree on a file name. Bump
:data:`FORMAT_VERSION` when a runtime of the previous version could misread a new artifact.
"""

from __future__ import annotations

#: the compiled library (a shared object: loading it runs its code, so it is checksummed first)
LIB = "model.so"
#: the (prepacked) parameters, TVM's save_param_dict format
PARAMS = "params.bin"
#: sha256 of every file, model meta, target, TVM version, tuning provenance
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
#: int8 builds: the QDQ ONNX model the int8 library was lowered from; ONNX Runtime runs it as
#: ``verify --against onnxruntime-int8`` (same calibration, by construction)
INT8_REFERENCE = "model.int8.onnx"

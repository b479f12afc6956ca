"""What the Ascend ModelZoo's AlexNet flow fixes: tensor names, opset, sizes, SoCs.

pth2onnx, ATC, imagenet_torch_preprocess and ais_bench agree on these; the atc script
and the input/result readers take them from here, and the ONNX export
(``model/ascend_export.py``, which may not import the runtime) is handed them by
:mod:`alexnet_tvm.interface.ascend`.
"""

from __future__ import annotations

from alexnet_tvm.meta import default_resize_size

#: the ModelZoo's pth2onnx names and opset (ATC supports opset 11)
INPUT_NAME = "actual_input_1"
OUTPUT_NAME = "output1"
BATCH_AXIS_NAME = "-1"
OPSET = 11
INPUT_SIZE = 224
#: imagenet_torch_preprocess's Resize(256) for the 224px crop: the toolkit's one resize rule
RESIZE_SIZE = default_resize_size(INPUT_SIZE)
DEFAULT_BATCHES = (1, 4, 8, 16, 32, 64)
DEFAULT_SOC = "Ascend310P3"
KNOWN_SOCS = ("Ascend310P3", "Ascend310")

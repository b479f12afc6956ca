"""The Ascend OM path, numpy only: what the ModelZoo flow consumes and what ais_bench writes.

There is no Ascend hardware here, so this package is about being exact at the file
boundary, where the ModelZoo scripts (pth2onnx, imagenet_torch_preprocess,
vision_metric), ATC and the ais_bench inference tool meet. One module per concern:

* :mod:`.modelzoo` - the flow's fixed names, opset and sizes (the ONNX export is handed them by the interface layer);
* :mod:`.names` - sample names, ais_bench's natural order, the val_label.txt writer
  (the reader is the general :mod:`alexnet_tvm.runtime.labels`);
* :mod:`.atc` - the ``atc`` command lines (one static OM per batch size);
* :mod:`.inputs` - preprocessing to the raw ``.bin`` inputs (the toolkit's own PIL +
  numpy transform, so TVM and the NPU see identical bytes), and reading them back;
* :mod:`.resultfiles`, :mod:`.results`, :mod:`.perf` - ais_bench result folders in
  every format (TXT, BIN, NPY) and layout (``{stem}_0.ext`` with ``{dir}_summary.json``
  beside the folder, the mid-2022 ``sample_id_N_output_M.ext`` with ``sumary.json``
  inside, per-device folders), and the summary's throughput and latencies;
* :mod:`.metric` - vision_metric's Top-1..Top-5 and its ``result.json``, byte for byte
  (the counting is the general :mod:`alexnet_tvm.runtime.metrics`);
* :mod:`.compare` - the comparison the ``verify --against ascend:DIR`` gate is built on.

It never imports torch: it runs on boards that only have the TVM runtime and numpy.
Malformed input is refused with one precise line (:class:`AscendError`, or
:class:`DatasetError` for label files and image folders); where the ModelZoo
tolerates something, it is tolerated here too but counted in a warning, never
skipped silently. The names below are the package's API (``from
alexnet_tvm.runtime import ascend as A; A.load_results(...)``).
"""

from __future__ import annotations

from ..labels import Labels, read_labels, sample_name
from ..metrics import TOPN, TopKResult
from .atc import atc_command, atc_script, check_batches, check_soc, write_atc_script
from .compare import TXT_ROUNDING, compare_to_om, om_tolerance
from .inputs import (INPUT_SUFFIXES, PreprocessReport, collect_images, iter_bin_batches, list_bin_inputs,
                     load_bin_inputs, preprocess_folder, preprocess_image, read_bin_input)
from .metric import evaluate_results, vision_metric_topk, write_result_json
from .modelzoo import (BATCH_AXIS_NAME, DEFAULT_BATCHES, DEFAULT_SOC, INPUT_NAME, INPUT_SIZE, KNOWN_SOCS, OPSET,
                       OUTPUT_NAME, RESIZE_SIZE)
from .names import natural_sort, write_label_file
from .perf import summary_perf
from .resultfiles import FORMATS
from .results import OLD_SUMMARY, AisResults, load_results

__all__ = [
    "AisResults", "BATCH_AXIS_NAME", "DEFAULT_BATCHES", "DEFAULT_SOC", "FORMATS", "INPUT_NAME", "INPUT_SIZE",
    "INPUT_SUFFIXES", "KNOWN_SOCS", "Labels", "OLD_SUMMARY", "OPSET", "OUTPUT_NAME", "PreprocessReport",
    "RESIZE_SIZE", "TOPN", "TXT_ROUNDING", "TopKResult", "atc_command", "atc_script", "check_batches", "check_soc",
    "collect_images", "compare_to_om", "evaluate_results", "iter_bin_batches", "list_bin_inputs",
    "load_bin_inputs", "load_results", "natural_sort", "om_tolerance", "preprocess_folder", "preprocess_image",
    "read_bin_input", "read_labels", "sample_name", "summary_perf", "vision_metric_topk", "write_atc_script",
    "write_label_file", "write_result_json",
]

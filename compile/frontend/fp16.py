"""``--precision fp16``: the whole network in half precision on a CUDA GPU's tensor cores.

A GPU's tensor cores take fp16 operands (sm_70 and newer), and DLight's ``Matmul`` rule
tensorizes a GEMM whose inputs are fp16 with fp16 or fp32 accumulation when every row,
column and reduction extent is over 64 (AlexNet's conv2-conv5; conv1's 64 output channels
and batch-1 FC layers stay on the CUDA cores, the FC layers then reading half the bytes).
So, unlike bf16 on the CPU (precision.py: FC weights only, fp32 math), fp16 converts it all:

- every weight and bias is stored as fp16 (the parameters themselves, cast here, so no cast
  kernel runs per inference: on a GPU nothing lifts weight transforms out of ``main``);
- Relax's ``ToMixedPrecision`` casts the fp32 input to fp16 once, runs every conv and FC on
  fp16 operands with fp32 accumulation, keeps the activations between layers in fp16 (bias,
  ReLU and the cast fused into each GEMM's store), and casts the logits back to fp32.

The artifact's input and output stay fp32, so callers see no difference; ``verify`` holds it
to the same gates as fp32 and bf16 (top-1 agreement, logit error relative to their range).
GPU targets only: on a CPU fp16 has no fast path here.
"""

from __future__ import annotations

import dataclasses

from alexnet_tvm.errors import ToolkitError

#: the accumulator of every fp16 conv and FC
ACCUMULATE = "float32"


def check_fp16_target(spec) -> None:
    """Refuse fp16 where there are no tensor cores to run it on (every CPU target)."""
    if spec.kind != "cuda":
        raise ToolkitError(f"--precision fp16 is for CUDA targets (tensor cores), not {spec.name} (kind {spec.kind}); "
                           "use fp32, or bf16 on a CPU with AVX-512 BF16")


def fp16_model(imported):
    """``imported`` (an :class:`~.importer.ImportedModel`) with fp16 parameters and mixed-precision math."""
    import numpy as np
    import tvm
    from tvm import relax

    func = imported.mod["main"]
    num_input = int(func.attrs["num_input"]) if func.attrs and "num_input" in func.attrs else 1
    weights = [p for p in func.params[num_input:] if str(p.ty.dtype) == "float32"]
    if not weights:
        raise ToolkitError("--precision fp16 found no fp32 weights to convert")
    names = {p.name for p in weights}
    mod = relax.transform.ToMixedPrecision(ACCUMULATE, sorted(names))(imported.mod)
    half = {i for i, p in enumerate(func.params[num_input:]) if p.name in names}
    params = [tvm.runtime.tensor(p.numpy().astype(np.float16)) if i in half else p
              for i, p in enumerate(imported.params)]
    return dataclasses.replace(imported, mod=mod, params=params)

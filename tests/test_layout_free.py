"""compile/frontend/layout_free.py: an FC layer's transposed weight is layout-free like a weight."""

from __future__ import annotations

from helpers.models import repo_targets


def _layout_free(func) -> list[int]:
    return [int(i) for i in func.attrs["layout_free_buffers"]] if func.attrs and "layout_free_buffers" in func.attrs \
        else []


def test_fc_kernels_may_repack_their_transposed_weights(tmp_path):
    """In the demo model's prepared graph every FC kernel reads its weight (argument 1, the
    transposed parameter) and its bias (argument 2) as layout-free; a conv kernel's buffers
    stay as AttachAttrLayoutFreeBuffers marks them (its kernel, argument 1, only)."""
    from tvm import relax

    from alexnet_tvm.compile.frontend.load import load_prepared
    from alexnet_tvm.model.checkpoint import init_checkpoint

    model = tmp_path / "demo.pt"
    init_checkpoint("cifar", 10, model, input_size=32)
    spec = repo_targets()["x86-avx2"]
    _, mod = load_prepared(model, 2, None, "fp32", None, spec, spec.tvm_target(), tmp_path)
    funcs = {gv.name_hint: f for gv, f in mod.functions.items() if not isinstance(f, relax.Function)}
    fcs = {n: f for n, f in funcs.items() if "T.sblock(\"matmul\")" in f.script()}
    convs = {n: f for n, f in funcs.items() if n.startswith("fused_conv2d")}
    assert len(fcs) == 3 and convs
    assert all(_layout_free(f) == [1, 2] for f in fcs.values()), {n: _layout_free(f) for n, f in fcs.items()}
    assert all(_layout_free(f) == [1] for f in convs.values()), {n: _layout_free(f) for n, f in convs.items()}
    # the transposes that feed them run at build time: only the stock mark (the parameter they read)
    transposes = [f for n, f in funcs.items() if n.startswith("transpose")]
    assert transposes and all(_layout_free(f) == [0] for f in transposes)

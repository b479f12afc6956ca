"""The VNNI tensor intrinsic that int8 GEMM schedules name, registered where records are read.

A tuning record of an int8 GEMM replays ``tensorize(..., VNNI_INTRIN)``: MetaSchedule's
JSONDatabase parses every record of a database when it opens it, and refuses the whole
database if a record names an intrinsic this process has not registered. So
compile/tuning/database.py registers it before it opens a database whose records name it,
and the int8 kernels (kernels.py) use it. TVM is imported only when a database or a kernel
needs it.

Why not TVM's own ``dot_16x4_vnni``: it passes ``int32x16`` operands to
``llvm.x86.avx512.vpdpbusd.512``, whose signature in the LLVM that TVM 0.27 links takes
``<64 x i8>``, so every build with it fails LLVM verification. This is the same
description as ``tvm.s_tir.tensor_intrin.x86``'s, with the operands typed as LLVM wants them.
The description is written here too, not imported: importing that module imports every
target's intrinsics (57-77 s on the Zen 3).
"""

from __future__ import annotations

#: the registered name of the tensor intrinsic
VNNI_INTRIN = "alexnet_tvm_dot_16x4_vnni"

_registered = False


def register_intrinsic() -> None:
    """Registers VNNI_INTRIN once per process (tuning, and every reader of a record set)."""
    global _registered
    if _registered:
        return
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def vnni_desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        """What one vpdpbusd computes: 16 int32 sums, each += 4 products of u8 (A) and i8 (B)."""
        A = T.match_buffer(a, (4,), "uint8", offset_factor=1)
        B = T.match_buffer(b, (16, 4), "int8", offset_factor=1)
        C = T.match_buffer(c, (16,), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4], B[0:16, 0:4])
            T.writes(C[0:16])
            for lane, k in T.grid(16, 4):
                with T.sblock("update"):
                    vl, vk = T.axis.remap("SR", [lane, k])
                    C[vl] = C[vl] + T.Cast("int32", A[vk]) * T.Cast("int32", B[vl, vk])

    @T.prim_func(s_tir=True)
    def vnni_impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (4,), "uint8", offset_factor=1)
        B = T.match_buffer(b, (16, 4), "int8", offset_factor=1)
        C = T.match_buffer(c, (16,), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4], B[0:16, 0:4])
            T.writes(C[0:16])
            a_i32 = T.reinterpret("int32", A.vload([0], "uint8x4"))
            C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
                "int32x16", "llvm.x86.avx512.vpdpbusd.512", C.vload([0], dtype="int32x16"),
                T.reinterpret("uint8x64", T.broadcast(a_i32, 16)), B.vload([0, 0], dtype="int8x64"))

    try:
        TensorIntrin.register(VNNI_INTRIN, vnni_desc, vnni_impl)
    except Exception:  # already registered by an earlier import in this process
        pass
    _registered = True


def import_tvm_intrinsics() -> None:
    """Import ``tvm.s_tir.tensor_intrin`` (every target's intrinsics), which MetaSchedule's
    TuneContext imports on first use, with TVMScript's caller lookup made cheap.

    Its ``@prim_func`` decorator calls ``inspect.stack()``, which looks up the source file and
    reads the lines around every frame on the stack, once per function: for the package's ~500
    functions that took 77 s in a plain process on the Zen 3, and longer inside pytest, whose
    stack is deeper (a test that tunes: 202 s). The decorator reads only the frames themselves, and the lines to tell a
    function inside an ``@ir_module`` class, which these modules do not have; so while they
    import, the stack is the bare frames (:func:`_bare_stack`).
    """
    import inspect
    import sys

    if "tvm.s_tir.tensor_intrin" in sys.modules:
        return
    full = inspect.stack
    inspect.stack = _bare_stack
    try:
        import tvm.s_tir.tensor_intrin  # noqa: F401
    finally:
        inspect.stack = full


def _bare_stack(context: int = 1) -> list:
    """``inspect.stack()`` of the caller without source files or lines."""
    import inspect
    import sys

    frames = []
    frame = sys._getframe(1)
    while frame is not None:
        frames.append(inspect.FrameInfo(frame, frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name,
                                        None, None))
        frame = frame.f_back
    return frames

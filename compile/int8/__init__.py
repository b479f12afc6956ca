"""int8: a QDQ ONNX graph lowered to VNNI kernels (docs/int8.md).

Start at :mod:`.qdq_import` (the graph to a chain of kernels); ``kernels`` holds the TE kernels,
``module`` turns the chain into a Relax module and says how its GEMMs are tuned, and
``tensor_intrin`` registers the VNNI intrinsic their records name.
"""

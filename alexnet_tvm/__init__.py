"""alexnet-tvm: compile, autotune, verify and ship AlexNet with Apache TVM.

The top-level folders model/, compile/ and runtime/ are installed as the
subpackages ``alexnet_tvm.model``, ``alexnet_tvm.compile`` and
``alexnet_tvm.runtime``. Importing this package (and ``runtime``) never imports
torch, so the runtime works on a board that only has the TVM runtime.
"""

__version__ = "0.1.0"

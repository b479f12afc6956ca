"""Plain helpers the test modules share, one module a concern; fixtures stay in ``tests/conftest.py``.

A test imports from here (``from helpers.models import write_tiny_checkpoint``), never from another
``test_*.py`` module nor from conftest: tests/test_suite_shape.py checks it.

- ``models``: the checkout's root and targets.yaml, the tiny checkpoints every compile test starts from;
- ``artifacts``: the tiny built artifact, its verify report and packs, the test registry's token;
- ``records``: committed record sets, and waiting on a tune's records;
- ``data``: tiny generated image folders and CIFAR-10 files;
- ``files``: digests and snapshots of a tree, to show that a refused command wrote nothing;
- ``packs``: tampered packs and a registry that lists them under their true digest;
- ``cli``: the CLI as a subprocess, a free port, ending a service's process group, the one-line refusal check;
- ``forms``: every file form a user may bring a network in.
"""

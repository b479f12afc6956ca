"""Tuned-library distribution: pack an artifact, publish it to a registry, pull it elsewhere.

A *pack* is one ``.tar.gz`` holding an artifact (``model.so``, ``params.bin``,
``manifest.json``), ``pack.json``, optionally the tuning records it was built
with (``tuning/``) and its verify report (``verify.json``), and a
``SHA256SUMS`` covering every other file. A *registry* is a folder or an
HTTP(S) base URL with ``index.json`` listing the packs under ``packs/``.

Modules, by concern: ``archive`` (tar writing, member-name checks, SHA256SUMS,
safe extraction), ``index`` (what ``index.json`` holds and which pack suits this
host), ``pack`` (an artifact into a pack and back), ``registry`` (reading and
publishing, folder or HTTP), ``server`` (``registry serve``), ``pull`` and
``logs`` (tuning records between machines).

A deployment machine runs ``pull``, so nothing here imports torch,
``alexnet_tvm.compile`` or ``alexnet_tvm.model`` (there may be no compiler
toolchain there), and nothing loads a library: a ``.so`` is code, so the index
digest, every file's checksum, the tar's member names and the TVM/CPU
compatibility are all checked first, in a temporary folder that is renamed into
place only once everything passed.
"""

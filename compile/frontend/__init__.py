"""Frontend: a model file to the prepared Relax module that ``tune`` and ``build`` share.

Start at :mod:`.load` (``load_prepared``, the one road for fp32, bf16 and int8). ``importer`` reads
every model format into Relax, ``canonical``/``onnx_canonical`` bring each exporter's graph to one
form, ``precision`` rewrites it for bf16, and ``pipeline`` (with ``layout_free``) runs the passes
before tuning and after it. Graph preparation, so precision and layout_free live here too: both
rewrite the graph before MetaSchedule sees it, and a build must rewrite it exactly as tune did.
"""

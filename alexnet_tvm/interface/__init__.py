"""Jobs that span model/, compile/ and runtime/: verify and evaluate against a reference
(references.py holds the one choice of reference runtime), demo, bench, targets/tune/build
by target name (compile_jobs.py) and RPC boards (boards.py).

The CLI parses and validates, then calls exactly one function from here or from
one of the three layers.
"""

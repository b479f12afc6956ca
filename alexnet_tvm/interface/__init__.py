"""Jobs that span model/, compile/ and runtime/, and the job behind every command: verify and
evaluate against a reference (references.py holds the one choice of reference runtime), demo,
bench, targets/tune/build by target name (compile_jobs.py), RPC boards (boards.py, rpc.py),
distribution (dist.py), serving (serve.py), Ascend (ascend.py), predict and model (model.py).

Each CLI command parses and validates, then calls exactly one function from here, which
decides the defaults and returns the lines the command prints.
"""

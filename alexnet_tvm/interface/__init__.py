"""Jobs that span model/, compile/ and runtime/ (verify against a reference, demo, bench).

The CLI parses and validates, then calls exactly one function from here or from
one of the three layers.
"""

"""Click commands: parse and validate, then call one function that does the work."""

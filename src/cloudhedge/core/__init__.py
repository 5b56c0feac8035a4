"""Pure domain: models, units, ids and errors. No I/O; imports nothing else of ours."""

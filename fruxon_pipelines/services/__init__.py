"""Use cases: one function each, the only entry for the API, the CLI and the sensors."""

"""`ddb-bridge demo`: the whole migration on embedded defaults (moto, Tansu, SQLite).

Like the CLI, this package is a composition root: it starts services and runs the real
`stream`, `backfill`, `apply` and `verify` commands, so it may wire connectors together.
"""

"""`workbench serve` and everything that talks to it.

- `app`: the one process that owns the database (receivers, read API, UI, scanner, probe worker);
- `api`: its read API under /api/v1;
- `discovery`: `server.json`, how other commands learn that a server holds the database;
- `client`: the one client every command uses to reach a running server.

Nothing is imported here: the CLI imports `discovery` and `client` without paying for Uvicorn and gRPC.
"""

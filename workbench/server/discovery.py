"""`server.json`: how a command learns that `workbench serve` holds the database, and where it listens.

Kept apart from the app so that reading it costs no Uvicorn, gRPC or collector imports: every CLI
command asks this before it opens the database.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from workbench.settings import Settings


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    host: str
    http_port: int
    grpc_port: int
    db: str
    ui_url: str = ""  # empty when the server runs without the UI

    @property
    def http_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.http_port}"

    def holds(self, settings: Settings) -> bool:
        """Whether this server's database is the one `settings` names (`--db` may name another file)."""
        return Path(self.db) == settings.db_path.resolve()


def server_file(settings: Settings) -> Path:
    return settings.data_dir / "server.json"


def running_server(settings: Settings) -> ServerInfo | None:
    """The server that runs on this data directory, if one is alive (whatever database it holds)."""
    path = server_file(settings)
    try:
        info = ServerInfo(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return None  # a stale file from a server that was killed
    except PermissionError:
        pass
    return info

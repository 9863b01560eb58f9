"""The sample agents' tools: real side effects, confined to a throw-away workspace and the loopback.

A database is a SQLite file, files are files, a web page is served by an `http.server` on 127.0.0.1.
What must never leave the machine (the exfiltration in the prompt-injection sample) is refused by
`Outbox.post`, which only ever sends to a loopback address: a send anywhere else is written to the
workspace's outbox and reported as simulated.

Everything a tool returns or raises names paths relative to the workspace, never the temp folder, so
the recorded traces do not depend on where the run happened.
"""

from __future__ import annotations

import html
import ipaddress
import json
import math
import re
import sqlite3
import threading
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class Files:
    """Files under the workspace root, addressed by relative path as an agent's file tools are."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, relative: str) -> Path:
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise PermissionError(f"{relative}: outside the agent's workspace")
        return target

    def read_text(self, path: str) -> str:
        target = self.path(path)
        if not target.is_file():
            raise FileNotFoundError(f"[Errno 2] No such file or directory: '{path}'")
        return target.read_text()

    def write_text(self, path: str, content: str) -> dict[str, Any]:
        target = self.path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return {"path": path, "bytes_written": len(content.encode())}

    def list_dir(self, path: str) -> list[str]:
        target = self.path(path)
        if not target.is_dir():
            raise FileNotFoundError(f"[Errno 2] No such file or directory: '{path}'")
        return sorted(p.name for p in target.iterdir())


class Database:
    """A SQLite database the agent reaches through roles: `readonly` opens the file read-only, so a
    write under it fails in SQLite itself (a real permission error); `admin` may do anything."""

    ROLES = ("readonly", "admin")

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name

    def connect(self, role: str = "admin") -> sqlite3.Connection:
        if role not in self.ROLES:
            raise PermissionError(f"unknown database role {role!r}")
        mode = "ro" if role == "readonly" else "rwc"
        return sqlite3.connect(f"file:{self.path}?mode={mode}", uri=True, isolation_level=None)

    def run(self, sql: str, role: str) -> dict[str, Any]:
        """Run one statement; rows come back as lists, at most 50 of them, as an agent's SQL tool would."""
        with closing(self.connect(role)) as conn:
            try:
                cursor = conn.execute(sql)
            except sqlite3.OperationalError as exc:
                if "readonly" in str(exc):
                    raise PermissionError(
                        f"permission denied: role '{role}' cannot modify database '{self.name}' ({exc})"
                    ) from exc
                raise
            rows = cursor.fetchmany(50)
            columns = [d[0] for d in cursor.description] if cursor.description else []
            return {"columns": columns, "rows": [list(r) for r in rows], "rowcount": cursor.rowcount}

    def scalar(self, sql: str) -> Any:
        with closing(self.connect("readonly")) as conn:
            row = conn.execute(sql).fetchone()
            return row[0] if row else None


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class names it so)
        pass


class LoopbackWeb:
    """A few named sites served from local folders by a real HTTP server on 127.0.0.1.

    `fetch` resolves a site's hostname to the loopback server, like a hosts file in the sandbox; any
    other host is unreachable, so a sample never touches the internet."""

    def __init__(self, sites: Mapping[str, Path]) -> None:
        self.sites = dict(sites)
        self._servers: dict[str, ThreadingHTTPServer] = {}

    def __enter__(self) -> LoopbackWeb:
        for host, folder in self.sites.items():

            def handler(*args: Any, _folder: Path = folder) -> _QuietHandler:
                return _QuietHandler(*args, directory=str(_folder))

            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers[host] = server
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()

    def fetch(self, url: str) -> str:
        parts = urlsplit(url)
        server = self._servers.get(parts.hostname or "")
        if server is None:
            raise ConnectionError(f"cannot resolve host {parts.hostname!r} from the sandbox")
        port = server.server_address[1]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{parts.path or '/'}", headers={"Host": parts.netloc}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.read().decode("utf-8"))


def page_text(markup: str) -> str:
    """Text of an HTML page as a naive fetch tool extracts it: tags dropped, hidden elements kept."""
    without_tags = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", markup, flags=re.S | re.I)
    without_tags = re.sub(r"<!--(.*?)-->", r" \1 ", without_tags, flags=re.S)
    without_tags = re.sub(r"<[^>]+>", " ", without_tags)
    return re.sub(r"\s+", " ", html.unescape(without_tags)).strip()


class Outbox:
    """Outgoing requests and mail. Only loopback requests are really sent; every other destination is
    recorded in `outbox.jsonl` in the workspace and answered as the remote end would have."""

    def __init__(self, files: Files) -> None:
        self.files = files

    def _record(self, entry: dict[str, Any]) -> int:
        target = self.files.path("outbox.jsonl")
        line = json.dumps(entry, ensure_ascii=False, sort_keys=True)
        with target.open("a") as fh:
            fh.write(line + "\n")
        return len(line)

    def post(self, url: str, body: Any) -> dict[str, Any]:
        payload = json.dumps(body, ensure_ascii=False).encode()
        if is_loopback(url):
            request = urllib.request.Request(url, data=payload, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return {"status": response.status, "bytes_sent": len(payload), "simulated": False}
        self._record({"kind": "http_post", "url": url, "body": body})
        return {"status": 202, "bytes_sent": len(payload), "simulated": True}

    def send_email(self, to: Sequence[str], subject: str, body: str) -> dict[str, Any]:
        self._record({"kind": "email", "to": list(to), "subject": subject, "body": body})
        return {"queued": True, "recipients": len(to), "simulated": True}


@dataclass(frozen=True)
class Document:
    id: str
    content: str


_WORD = re.compile(r"[a-z0-9]+")


def _bag(text: str) -> Counter[str]:
    return Counter(w for w in _WORD.findall(text.lower()) if len(w) > 2 or w.isdigit())


class VectorStore:
    """A memory the agent queries by similarity: bag-of-words cosine, enough to rank a handful of notes
    the way an embedding index would, and exactly reproducible."""

    def __init__(self, documents: Sequence[Document]) -> None:
        self.documents = list(documents)
        self._bags = [_bag(d.content) for d in self.documents]

    def query(self, text: str, top_k: int = 3) -> list[dict[str, Any]]:
        q = _bag(text)
        scored = []
        for doc, bag in zip(self.documents, self._bags, strict=True):
            dot = sum(q[w] * bag[w] for w in q)
            norm = math.sqrt(sum(v * v for v in q.values())) * math.sqrt(sum(v * v for v in bag.values()))
            scored.append((round(dot / norm, 3) if norm else 0.0, doc))
        scored.sort(key=lambda pair: (-pair[0], pair[1].id))
        return [{"id": d.id, "score": s, "content": d.content} for s, d in scored[:top_k]]

"""`make fuzz`: hostile OTLP bodies against a real `workbench serve`, over HTTP and gRPC.

Sends `--bodies` bodies (default 100,000) on kept-alive connections: random bytes, mutated protobuf,
malformed and mutated JSON, gzip that lies (random, truncated or bomb-like), the reproductions of
issue #14, and raw gRPC messages. Counts answers by status, lists any 5xx, counts connections the
server reset, measures the server's RSS (with its decode workers) before and after, and checks that a
valid request is still stored afterwards. Appends a section to benchmarks/RESULTS.md.

Goal: 0 x 5xx, 0 resets, 0 crashes, memory flat.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import grpc
import psutil
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.payloads import export_request  # noqa: E402
from tests import hostile_payloads as hostile  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PROTOBUF, JSON = "application/x-protobuf", "application/json"


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    data_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        {
            "WORKBENCH_DATA_DIR": str(data_dir),
            "WORKBENCH_HTTP_PORT": "0",
            "WORKBENCH_GRPC_PORT": "0",
            "WORKBENCH_UI_PORT": "0",
        }
    )
    log = (data_dir / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve"], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 120
    while b"\nready\n" not in b"\n" + (data_dir / "serve.log").read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"workbench serve did not start:\n{(data_dir / 'serve.log').read_text()}")
        time.sleep(0.1)
    info = json.loads((data_dir / "server.json").read_text())
    return proc, int(info["http_port"]), int(info["grpc_port"])


def rss(pid: int) -> int:
    """The server's resident memory with its children (the decode workers)."""
    proc = psutil.Process(pid)
    return proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))


class Bodies:
    """Deterministic hostile bodies: (kind, transport, content type, encoding, bytes)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.protobufs = [export_request(seed + i, n).SerializeToString() for i, n in enumerate((1, 3, 8))]
        self.jsons = [
            json.dumps(json_format.MessageToDict(export_request(seed + 10 + i, 2))) for i in range(3)
        ]
        self.hostile = [
            ("issue-14 time", PROTOBUF, hostile.huge_start_time("fz")[0]),
            ("issue-14 surrogate", JSON, hostile.surrogate_key("fz")[0]),
            ("issue-14 deep json", JSON, hostile.deep_array_json("fz")[0]),
            ("issue-14 deep protobuf", PROTOBUF, hostile.deep_array_protobuf("fz")[0]),
            ("issue-14 brackets", JSON, hostile.brackets()),
        ]

    def _mutate(self, data: bytes) -> bytes:
        b = bytearray(data)
        for _ in range(self.rng.randint(1, 8)):
            op = self.rng.random()
            i = self.rng.randrange(len(b)) if b else 0
            if op < 0.5 and b:
                b[i] = self.rng.randrange(256)
            elif op < 0.7:
                b[i:i] = self.rng.randbytes(self.rng.randint(1, 8))
            elif op < 0.85 and b:
                del b[i : i + self.rng.randint(1, 16)]
            else:
                b = b[: self.rng.randint(0, len(b))]
        return bytes(b)

    def next(self) -> tuple[str, str, str, str | None, bytes]:
        r = self.rng.random()
        if r < 0.15:
            return (
                "random bytes",
                "http",
                self.rng.choice([PROTOBUF, JSON]),
                None,
                self.rng.randbytes(self.rng.randint(0, 2000)),
            )
        if r < 0.40:
            return "mutated protobuf", "http", PROTOBUF, None, self._mutate(self.rng.choice(self.protobufs))
        if r < 0.60:
            text = self.rng.choice(self.jsons)
            junk = self.rng.choice(['"\\ud800"', "{", "]", "1e9999", '{"\\udc00":1}', "[" * 3000, "null"])
            i = self.rng.randrange(len(text))
            body = (
                (text[:i] + junk + text[i:]).encode()
                if self.rng.random() < 0.5
                else self._mutate(text.encode())
            )
            return "malformed JSON", "http", JSON, None, body
        if r < 0.75:
            inner = self.rng.choice(self.protobufs)
            choice = self.rng.random()
            if choice < 0.3:
                body = self.rng.randbytes(self.rng.randint(0, 500))  # says gzip, is not
            elif choice < 0.6:
                packed = gzip.compress(inner)
                body = packed[: self.rng.randint(0, len(packed))]  # truncated
            else:
                body = self._mutate(gzip.compress(self._mutate(inner)))
            return "lying gzip", "http", PROTOBUF, "gzip", body
        if r < 0.77:
            kind, ctype, body = self.rng.choice(self.hostile)
            return kind, "http", ctype, None, body
        if r < 0.97:
            return "grpc mutated", "grpc", PROTOBUF, None, self._mutate(self.rng.choice(self.protobufs))
        return "valid", "http", PROTOBUF, None, self.rng.choice(self.protobufs)


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status: Counter[str] = Counter()
        self.by_kind: Counter[tuple[str, str]] = Counter()
        self.server_errors: list[str] = []
        self.resets = 0

    def add(self, kind: str, status: str, detail: str = "") -> None:
        with self.lock:
            self.status[status] += 1
            self.by_kind[(kind, status)] += 1
            if status.startswith("5") or status in ("UNKNOWN", "INTERNAL"):
                self.server_errors.append(f"{kind}: {status} {detail[:200]}")


def client(port: int, grpc_port: int, bodies: Bodies, lock: threading.Lock, n: int, tally: Tally) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    export = channel.unary_unary(EXPORT, response_deserializer=ExportTraceServiceResponse.FromString)
    for _ in range(n):
        with lock:
            kind, transport, ctype, encoding, body = bodies.next()
        if transport == "grpc":
            try:
                export(body, timeout=120)
                tally.add(kind, "OK")
            except grpc.RpcError as exc:
                tally.add(kind, exc.code().name, exc.details() or "")
            continue
        headers = {"Content-Type": ctype, **({"Content-Encoding": encoding} if encoding else {})}
        try:
            conn.request("POST", "/v1/traces", body=body, headers=headers)
            resp = conn.getresponse()
            detail = resp.read().decode("utf-8", "replace")
            tally.add(kind, str(resp.status), detail)
            if resp.getheader("connection", "").lower() == "close":
                tally.resets += 1
                conn.close()
        except (ConnectionError, http.client.HTTPException) as exc:
            tally.add(kind, "reset", repr(exc))
            tally.resets += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.close()
    channel.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bodies", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port, grpc_port = start_server(Path(tmp) / "data")
        try:
            bodies, tally, lock = Bodies(args.seed), Tally(), threading.Lock()
            warm = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            warm.request("POST", "/v1/traces", body=bodies.protobufs[0], headers={"Content-Type": PROTOBUF})
            assert warm.getresponse().status == 200
            before = rss(proc.pid)
            start = time.perf_counter()
            per = args.bodies // args.clients
            threads = [
                threading.Thread(target=client, args=(port, grpc_port, bodies, lock, per, tally))
                for _ in range(args.clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
            after = rss(proc.pid)
            valid = export_request(999_999, 5).SerializeToString()
            check = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            check.request("POST", "/v1/traces", body=valid, headers={"Content-Type": PROTOBUF})
            resp = check.getresponse()
            ok_after = resp.status == 200 and not ExportTraceServiceResponse.FromString(resp.read()).HasField(
                "partial_success"
            )
            alive = proc.poll() is None
        finally:
            proc.terminate()
            rc = proc.wait(60)
    sent = sum(tally.status.values())
    lines = [
        f"## Fuzz: hostile OTLP bodies against workbench serve ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"{sent:,} bodies (seed {args.seed}) from {args.clients} kept-alive clients in {elapsed:.0f} s.",
        "",
        "| answer | count |",
        "|---|---|",
        *(f"| {status} | {count:,} |" for status, count in sorted(tally.status.items())),
        "",
        "| measure | value |",
        "|---|---|",
        f"| 5xx / gRPC UNKNOWN or INTERNAL | {len(tally.server_errors)} |",
        f"| connections reset or closed by the server | {tally.resets} |",
        f"| server alive after the run | {'yes' if alive else 'NO'} (exit {rc} on SIGTERM) |",
        f"| valid request stored after the run | {'yes' if ok_after else 'NO'} |",
        f"| server RSS (with decode workers) before / after | {before / 2**20:.0f} MiB / "
        f"{after / 2**20:.0f} MiB |",
        "",
        "By kind: "
        + "; ".join(f"{kind} {status} x{n:,}" for (kind, status), n in sorted(tally.by_kind.items())),
        "",
    ]
    if tally.server_errors:
        lines += ["First server errors:", "", *(f"- {e}" for e in tally.server_errors[:10]), ""]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
        RESULTS.write_text(existing.rstrip("\n") + "\n\n" + report)
    if tally.server_errors or tally.resets or not alive or not ok_after:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

"""The compliance export end to end on a real DuckDB file: round trip on the sample incidents, the
tamper matrix on bundles (directory and zip) and on the database, and redaction of seeded secrets."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import stat
import zipfile
from pathlib import Path

import duckdb
import orjson
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from collectors.exporter import DuckDBSpanExporter
from collectors.integrity import step_deriver, stored_columns_check
from collectors.normalize import NORMALIZER_VERSION
from workbench.cli import cli
from workbench.cli.loading import ingest_files
from workbench.export import ExportOptions, LedgerBroken, export_bundle, otlp_json, signing, verify_bundle
from workbench.export.redact import parse_kinds
from workbench.model import ProbeResult
from workbench.settings import Settings
from workbench.store.annotations import add_annotation
from workbench.store.connection import Store
from workbench.store.probes import write_result

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "sample_traces").glob("*.json"))

# Seeded values: none of these may appear anywhere in a redacted bundle.
SEEDED = {
    "aws": "AKIAZ7QW3XKEXAMPLE12",
    "openai": "sk-proj-Qm9vZ2xlR2VtaW5pS2V5U2VlZGVkRm9yVGVzdHM1234",
    "email": "dana.whitfield@example-corp.com",
    "card": "4539 1488 0343 6467",
    "phone": "+1 415-555-0142",
}


@pytest.fixture
def settings(_isolated_data_dir: Path) -> Settings:
    return Settings.from_env()


@pytest.fixture
def samples_db(settings: Settings) -> Settings:
    ingest_files(settings, SAMPLES)
    return settings


def _seed_secrets(settings: Settings) -> str:
    """A real OpenTelemetry SDK trace carrying the seeded values in attributes, an event, the status
    and the span name; plus an annotation, a probe run and probe results quoting them."""
    exporter = DuckDBSpanExporter(settings=settings)
    provider = TracerProvider(resource=Resource.create({"service.name": "leaky-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.export")
    with tracer.start_as_current_span("invoke_agent leaky") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        with tracer.start_as_current_span(f"notify {SEEDED['email']}") as span:
            span.set_attribute("gen_ai.operation.name", "execute_tool")
            span.set_attribute("gen_ai.tool.name", "send_email")
            span.set_attribute(
                "gen_ai.tool.call.arguments",
                json.dumps({"to": SEEDED["email"], "body": f"card {SEEDED['card']}, call {SEEDED['phone']}"}),
            )
            span.set_attribute("api.keys", [SEEDED["aws"], SEEDED["openai"]])
            span.add_event("log", {"message": f"using key {SEEDED['openai']}"})
            span.set_status(Status(StatusCode.ERROR, f"auth failed for {SEEDED['aws']}"))
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    with Store(settings.db_path) as store:
        cur = store.cursor()
        seq = cur.execute("SELECT max(seq) FROM spans WHERE trace_id = ?", [trace_id]).fetchone()[0]
        # Through the store API: a row inserted by hand is unsealed, and the export refuses it.
        add_annotation(
            store, trace_id, seq, "ana", f"customer {SEEDED['email']} phoned from {SEEDED['phone']}"
        )
        cur.execute(
            "INSERT INTO probe_runs (trace_id, step_seq, analyses, status, progress, params, provenance, "
            "created_at)"
            " VALUES (?, ?, '[\"probes\"]', 'done', 1.0, '{}', '{\"model_id\": \"tiny\"}', now())",
            [trace_id, seq],
        )
        run_id = cur.execute("SELECT max(id) FROM probe_runs").fetchone()[0]
        step_text = f"send to {SEEDED['email']} key {SEEDED['openai']}"
        tokens = step_text.split(" ")
        spans, at = [], 0
        for t in tokens:
            spans.append([at, at + len(t)])
            at += len(t) + 1
        data = {
            "text": step_text,
            "step_text": step_text,
            "tokens": tokens,
            "char_spans": spans,
            "scores": [0.1] * len(tokens),
            "score": 0.9,
            "threshold": 0.5,
            "fired": True,
        }
        write_result(
            store, ProbeResult(run_id, "probe:exfiltration", {"score": 0.9, "note": SEEDED["card"]}, data)
        )
    return trace_id


def _export(settings: Settings, out: Path, **kw: object) -> object:
    with Store(settings.db_path, read_only=True) as store:
        return export_bundle(
            store,
            settings.data_dir,
            ExportOptions(
                out=out,
                row_check=stored_columns_check(),
                derive=step_deriver(store),
                normalizer_version=NORMALIZER_VERSION,
                **kw,
            ),
        )


def _all_bytes(path: Path) -> list[tuple[str, bytes]]:
    """Every file's bytes; for a zip also every member decompressed; for parquet also its decoded rows."""
    import pyarrow.parquet as pq

    found: list[tuple[str, bytes]] = []
    files = [path] if path.is_file() else sorted(path.iterdir())
    for f in files:
        found.append((f.name, f.read_bytes()))
        if f.suffix == ".zip":
            with zipfile.ZipFile(f) as zf:
                for name in zf.namelist():
                    found.append((f"{f.name}:{name}", zf.read(name)))
                    if name.endswith(".parquet"):
                        (path.parent / "_tmp.parquet").write_bytes(zf.read(name))
                        rows = pq.read_table(path.parent / "_tmp.parquet").to_pylist()
                        found.append((f"{name} rows", json.dumps(rows, default=str).encode()))
        if f.suffix == ".parquet":
            found.append((f"{f.name} rows", json.dumps(pq.read_table(f).to_pylist(), default=str).encode()))
    return found


# --- round trip -------------------------------------------------------------------------------------


def test_every_sample_span_round_trips_through_otlp_json(samples_db: Settings) -> None:
    with Store(samples_db.db_path, read_only=True) as store:
        rows = store.cursor().execute("SELECT canonical FROM spans ORDER BY seq").fetchall()
    assert len(rows) == 94
    for (canonical,) in rows:
        doc = orjson.loads(otlp_json.line_from_canonical(bytes(canonical)))
        assert otlp_json.canonical_from_json(doc) == bytes(canonical)
        assert otlp_json.canonical_via_messages(doc) == bytes(canonical)


def test_every_otlp_value_shape_round_trips() -> None:
    """Edge values the samples lack: negative and huge ints, NaN/inf/-0.0, false, empty strings and
    values, bytes, nested arrays and kvlists, link and span flags, an empty status, schema URLs."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    def kv(key: str, **value: object) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(**value))

    values = [
        kv("neg", int_value=-5),
        kv("big", int_value=2**63 - 1),
        kv("nan", double_value=float("nan")),
        kv("inf", double_value=float("-inf")),
        kv("zero", double_value=-0.0),
        kv("f", bool_value=False),
        kv("empty", string_value=""),
        KeyValue(key="novalue"),
        KeyValue(key="emptyany", value=AnyValue()),
        kv("bin", bytes_value=b"\x00\xff"),
        kv("", string_value="unicode \u00e9\U0001f600"),
        kv(
            "arr",
            array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(), AnyValue(string_value="x")]),
        ),
        kv("kvl", kvlist_value=KeyValueList(values=[kv("inner", double_value=1.5)])),
    ]
    span = Span(
        trace_id=bytes(range(1, 17)),
        span_id=bytes(range(1, 9)),
        trace_state="k=v",
        name="edge",
        kind=3,
        start_time_unix_nano=2**63 + 5,
        end_time_unix_nano=1,
        attributes=values,
        dropped_attributes_count=2,
        events=[Span.Event(time_unix_nano=7, name="", attributes=values[:3], dropped_attributes_count=1)],
        dropped_events_count=4,
        links=[Span.Link(trace_id=bytes(16), span_id=bytes(8), flags=0x301, dropped_attributes_count=9)],
        dropped_links_count=5,
        flags=0x100,
    )
    span.status.SetInParent()
    rs = ResourceSpans(
        scope_spans=[ScopeSpans(spans=[span], schema_url="https://s/1")], schema_url="https://r/2"
    )
    rs.resource.SetInParent()
    rs.scope_spans[0].scope.SetInParent()
    canonical = rs.SerializeToString(deterministic=True)
    doc = orjson.loads(otlp_json.line_from_canonical(canonical))
    assert otlp_json.canonical_from_json(doc) == canonical
    assert otlp_json.canonical_via_messages(doc) == canonical


def test_sample_bundle_verifies_with_pinned_key_and_reveal(samples_db: Settings, tmp_path: Path) -> None:
    result = _export(samples_db, tmp_path / "b", redact_kinds=parse_kinds("all"))
    assert result.counts["spans"] == 94 and result.counts["traces"] == 5
    assert result.counts["redactions"] > 0  # the injected customer list holds emails
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert set(manifest["files"]) == {p.name for p in (tmp_path / "b").iterdir()} - {
        "manifest.json",
        "manifest.sig",
    }
    assert {row["clause"] for row in manifest["field_map"]} >= {
        "Art. 12(1)",
        "Art. 19(1), Art. 26(6)",
        "Annex A, A.6.2.8",
        "CC7.2",
    }
    for row in manifest["field_map"]:
        for answer in row["answered_by"]:
            assert answer["file"] in manifest["files"] or answer["file"] in {"manifest.json", "manifest.sig"}
    pub = (tmp_path / "b" / "public_key.pem").read_bytes()
    ok = verify_bundle(tmp_path / "b", pubkey=pub, reveal=result.reveal_path.read_bytes())
    assert ok.ok, [str(p) for p in ok.problems]
    assert ok.checked["spans"] == 94
    report = (tmp_path / "b" / "report.html").read_text()
    assert "How to verify" in report and "Art. 12" in report
    assert not re.search(
        r"<(script|link)[^>]+(src|href)=[\"']?(https?:)?//", report
    )  # plotly.js inline, no CDN
    assert "plotly" in report.lower() and report.count("<script") >= 2


def test_zip_bundle_of_one_trace_verifies_and_cli_exit_codes(samples_db: Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "one.zip"
    res = runner.invoke(cli, ["export", "--trace", "0413e656", "--no-redact", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "15 spans in 1 trace" in res.output
    pinned = str(signing.public_key_path(samples_db.data_dir))
    res = runner.invoke(cli, ["verify", str(out), "--json", "--pubkey", pinned])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["checked"]["spans"] == 15
    assert runner.invoke(cli, ["verify", str(out)]).exit_code == 3  # unpinned: see test_export_trust.py
    res = runner.invoke(cli, ["export", "--redact", "bogus", "--out", str(tmp_path / "x")])
    assert res.exit_code == 1 and "unknown redaction kind" in res.output


def test_key_is_created_once_with_private_mode(samples_db: Settings, tmp_path: Path) -> None:
    first = _export(samples_db, tmp_path / "a")
    second = _export(samples_db, tmp_path / "b")
    assert first.key_id == second.key_id
    mode = stat.S_IMODE(signing.key_path(samples_db.data_dir).stat().st_mode)
    assert mode == 0o600


# --- tamper matrix on bundles -----------------------------------------------------------------------


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _problems(bundle: Path, **kw: object) -> list[str]:
    result = verify_bundle(bundle, **kw)
    assert not result.ok
    return [str(p) for p in result.problems]


@pytest.fixture
def bundle(samples_db: Settings, tmp_path: Path) -> Path:
    _export(samples_db, tmp_path / "clean", redact_kinds=parse_kinds("all"))
    return tmp_path / "clean"


def _span_id(line: bytes) -> str:
    return orjson.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"]


def test_flipped_byte_in_a_span_is_named(bundle: Path) -> None:
    lines = _lines(bundle / "spans.jsonl")
    k = 6  # line 7: an unredacted span
    i = lines[k].index(b'"name":"') + 9
    lines[k] = lines[k][:i] + bytes([lines[k][i] ^ 0x01]) + lines[k][i + 1 :]
    _write_lines(bundle / "spans.jsonl", lines)
    problems = _problems(bundle)
    assert any(p.startswith("spans.jsonl: SHA-256/size differ") for p in problems)
    assert any(
        f"spans.jsonl line 7 (span {_span_id(lines[k])})" in p and "ledger digest" in p for p in problems
    ), problems


def test_deleted_line_is_named(bundle: Path) -> None:
    lines = _lines(bundle / "spans.jsonl")
    gone = _span_id(lines[10])
    _write_lines(bundle / "spans.jsonl", lines[:10] + lines[11:])
    problems = _problems(bundle)
    assert any(f"line 11 (span {gone}): span missing (deleted line)" in p for p in problems), problems


def test_inserted_line_is_named(bundle: Path) -> None:
    lines = _lines(bundle / "spans.jsonl")
    doc = orjson.loads(lines[3])
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "00000000deadbeef"
    _write_lines(bundle / "spans.jsonl", [*lines[:5], orjson.dumps(doc), *lines[5:]])
    problems = _problems(bundle)
    assert any(
        "line 6 (span 00000000deadbeef): span not in proofs.jsonl (inserted line)" in p for p in problems
    ), problems


def test_swapped_lines_are_named(bundle: Path) -> None:
    lines = _lines(bundle / "spans.jsonl")
    a, b = _span_id(lines[20]), _span_id(lines[21])
    lines[20], lines[21] = lines[21], lines[20]
    _write_lines(bundle / "spans.jsonl", lines)
    problems = _problems(bundle)
    named = " ".join(problems)
    assert a in named and b in named and ("out of order" in named or "moved" in named), problems
    assert not any("ledger digest" in p for p in problems)  # content intact: only the order is wrong


def test_swapped_proofs_records_are_named(bundle: Path) -> None:
    lines = _lines(bundle / "proofs.jsonl")
    lines[30], lines[31] = lines[31], lines[30]
    _write_lines(bundle / "proofs.jsonl", lines)
    problems = _problems(bundle)
    assert any(p.startswith("proofs.jsonl:") and "not increasing" in p for p in problems), problems


def test_replaced_file_is_named(bundle: Path) -> None:
    (bundle / "report.html").write_text("<html>all fine, nothing to see</html>")
    problems = _problems(bundle)
    assert problems == [p for p in problems if p.startswith("report.html")] and problems


def test_added_file_is_named(bundle: Path) -> None:
    (bundle / "extra.csv").write_text("a,b\n")
    assert any(p.startswith("extra.csv") and "inserted file" in p for p in _problems(bundle))


def test_forged_manifest_is_named(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["counts"]["findings"] = 0
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
    assert any(p.startswith("manifest.sig") and "signature does not match" in p for p in _problems(bundle))


def test_resigned_bundle_fails_against_the_pinned_key(bundle: Path, samples_db: Settings) -> None:
    """A forger re-signs with their own key and swaps public_key.pem: only pinning catches it."""
    genuine = (bundle / "public_key.pem").read_bytes()
    forger = Ed25519PrivateKey.generate()
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["signing"]["public_key"] = signing.raw_public(forger.public_key()).hex()
    (bundle / "public_key.pem").write_bytes(signing.public_pem(forger.public_key()))
    entry = manifest["files"]["public_key.pem"]
    entry["sha256"] = hashlib.sha256((bundle / "public_key.pem").read_bytes()).hexdigest()
    entry["bytes"] = (bundle / "public_key.pem").stat().st_size
    data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    (bundle / "manifest.json").write_bytes(data)
    (bundle / "manifest.sig").write_bytes(base64.b64encode(forger.sign(data)))
    assert verify_bundle(bundle).ok  # self-consistent without a pinned key...
    problems = _problems(bundle, pubkey=genuine)  # ...and caught with one
    assert any("wrong key" in p for p in problems) and any(p.startswith("manifest.sig") for p in problems)


def test_wrong_pinned_key_is_named(bundle: Path, tmp_path: Path) -> None:
    other = signing.public_pem(Ed25519PrivateKey.generate().public_key())
    problems = _problems(bundle, pubkey=other)
    assert any(p.startswith("public_key.pem") and "wrong key" in p for p in problems), problems
    res = CliRunner().invoke(cli, ["verify", str(bundle), "--pubkey", str(_write(tmp_path / "k.pem", other))])
    assert res.exit_code == 1 and "wrong key" in res.output


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_altered_redaction_is_caught_by_the_reveal(bundle: Path, samples_db: Settings) -> None:
    """Change a redacted line outside its masks, re-sign with the genuine key (the exporter's own key,
    i.e. the worst case: an insider): only putting the originals back shows it."""
    lines = _lines(bundle / "spans.jsonl")
    proofs = [orjson.loads(p) for p in _lines(bundle / "proofs.jsonl")]
    k = next(i for i, p in enumerate(proofs) if p["redacted"])
    lines[k] = lines[k].replace(b'"name":"', b'"name":"X', 1)
    _write_lines(bundle / "spans.jsonl", lines)
    proofs[k]["line_sha256"] = hashlib.sha256(lines[k]).hexdigest()  # the insider covers their tracks
    _write_lines(bundle / "proofs.jsonl", [orjson.dumps(p) for p in proofs])
    _resign(bundle, samples_db)
    assert verify_bundle(bundle).ok  # masks still where recorded; the insider's re-signature holds
    reveal = next((samples_db.data_dir / "exports" / "reveal").glob("*.json")).read_bytes()
    problems = _problems(bundle, reveal=reveal)
    assert any(f"spans.jsonl line {k + 1}" in p and "beyond its redactions" in p for p in problems), problems


def _resign(bundle: Path, settings: Settings) -> None:
    from workbench.export.bundle import file_entry

    manifest = json.loads((bundle / "manifest.json").read_text())
    for name in manifest["files"]:
        manifest["files"][name] = file_entry(bundle / name)
    data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    (bundle / "manifest.json").write_bytes(data)
    key = signing.load_or_create_key(settings.data_dir)
    (bundle / "manifest.sig").write_bytes(base64.b64encode(key.sign(data)))


def test_forged_consistency_proof_is_named(samples_db: Settings, tmp_path: Path) -> None:
    """A bundle of a prefix (the first trace ingested): its covered tree must extend to the checkpoint."""
    _export(samples_db, tmp_path / "p", trace_ids=_first_trace(samples_db))
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["ledger"]["covered"]["first_seq"] == 1 and manifest["ledger"]["consistency"]["proof"]
    assert verify_bundle(tmp_path / "p").ok
    manifest["ledger"]["consistency"]["proof"][0] = "00" * 32
    (tmp_path / "p" / "manifest.json").write_text(json.dumps(manifest))
    _resign(tmp_path / "p", samples_db)
    problems = _problems(tmp_path / "p")
    assert any("consistency proof from the covered tree" in p for p in problems), problems


def _first_trace(settings: Settings) -> list[str]:
    with Store(settings.db_path, read_only=True) as store:
        return [store.cursor().execute("SELECT trace_id FROM spans WHERE seq = 1").fetchone()[0]]


def test_damaged_zip_member_is_named(samples_db: Settings, tmp_path: Path) -> None:
    out = tmp_path / "b.zip"
    _export(samples_db, out)
    data = bytearray(out.read_bytes())
    with zipfile.ZipFile(out) as zf:
        info = zf.getinfo("spans.jsonl")
    at = info.header_offset + 30 + len(info.filename) + 200  # inside the compressed spans
    data[at] ^= 0xFF
    out.write_bytes(bytes(data))
    problems = _problems(out)
    assert any(p.startswith("spans.jsonl") for p in problems), problems


# --- tamper matrix on the database ------------------------------------------------------------------


def _flip_byte(con: duckdb.DuckDBPyConnection) -> None:
    (blob,) = con.execute("SELECT canonical FROM spans WHERE seq = 7").fetchone()
    data = bytearray(blob)
    data[len(data) // 2] ^= 0x01
    con.execute("UPDATE spans SET canonical = ? WHERE seq = 7", [bytes(data)])


def _swap(con: duckdb.DuckDBPyConnection) -> None:
    a, b = (
        bytes(r[0])
        for r in con.execute("SELECT canonical FROM spans WHERE seq IN (11, 12) ORDER BY seq").fetchall()
    )
    con.execute("UPDATE spans SET canonical = ? WHERE seq = 11", [b])
    con.execute("UPDATE spans SET canonical = ? WHERE seq = 12", [a])


DB_TAMPERING = {
    "flipped byte": (_flip_byte, "seq 7"),
    "deleted row": (lambda con: con.execute("DELETE FROM spans WHERE seq = 9"), "seq 9"),
    "inserted row": (
        lambda con: con.execute("INSERT INTO spans SELECT * REPLACE (95 AS seq) FROM spans WHERE seq = 3"),
        "seq 95",
    ),
    "swapped rows": (_swap, "seq 11"),
    "deleted ledger entry": (lambda con: con.execute("DELETE FROM ledger WHERE seq = 30"), "seq 30"),
    "forged checkpoint": (
        lambda con: con.execute("UPDATE ledger_checkpoints SET merkle_root = sha256('x')::BLOB"),
        "checkpoint",
    ),
    "edited column": (lambda con: con.execute("UPDATE spans SET name = 'harmless' WHERE seq = 5"), "seq 5"),
    # the insider edit: the step that ran a tool now says it ran something harmless
    "edited step": (
        lambda con: con.execute(
            'UPDATE steps SET tool_arguments = \'{"query": "SELECT 1"}\' '
            "WHERE seq = (SELECT min(seq) FROM steps WHERE tool_arguments IS NOT NULL)"
        ),
        "field tool_arguments",
    ),
    "deleted finding": (
        lambda con: con.execute("DELETE FROM findings WHERE id = (SELECT min(id) FROM findings)"),
        "finding",
    ),
}


@pytest.mark.parametrize("case", DB_TAMPERING)
def test_tampered_database_is_refused_and_named(samples_db: Settings, tmp_path: Path, case: str) -> None:
    tamper, named = DB_TAMPERING[case]
    con = duckdb.connect(str(samples_db.db_path))
    tamper(con)
    con.close()
    with pytest.raises(LedgerBroken, match=named):
        _export(samples_db, tmp_path / "t")
    assert not (tmp_path / "t").exists()


# --- redaction --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["dir", "zip"])
def test_seeded_secrets_never_leave_in_a_redacted_bundle(
    samples_db: Settings, tmp_path: Path, fmt: str
) -> None:
    trace_id = _seed_secrets(samples_db)
    out = tmp_path / ("b.zip" if fmt == "zip" else "b")
    result = _export(samples_db, out, redact_kinds=parse_kinds("all"))
    assert {"secret", "email", "card", "phone"} <= set(result.redactions)
    variants = {v for v in SEEDED.values()} | {SEEDED["card"].replace(" ", ""), SEEDED["openai"][8:40]}
    for name, data in _all_bytes(out):
        for value in variants:
            assert value.encode() not in data, f"{value!r} leaked into {name}"
    if fmt == "dir":  # the report shows the probe evidence and the annotation, masked
        report = (out / "report.html").read_text()
        assert "probe:exfiltration" in report and "ana" in report and "[REDACTED:email#" in report
        probe = orjson.loads((out / "probe_results.jsonl").read_text().splitlines()[0])
        assert "[REDACTED]" in probe["data"]["tokens"]
    reveal = result.reveal_path
    assert stat.S_IMODE(reveal.stat().st_mode) == 0o600
    assert SEEDED["aws"] in reveal.read_text()  # the owner keeps the originals...
    assert verify_bundle(out, reveal=reveal.read_bytes()).ok  # ...and they restore the ingested bytes
    # Unredacted, the same export carries them (the test is not vacuous).
    plain = tmp_path / "plain"
    _export(samples_db, plain, trace_ids=[trace_id])
    assert SEEDED["aws"].encode() in (plain / "spans.jsonl").read_bytes()


def test_export_refuses_an_existing_bundle_and_empty_selection(samples_db: Settings, tmp_path: Path) -> None:
    _export(samples_db, tmp_path / "b")
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="already exists"):
        _export(samples_db, tmp_path / "b")
    with pytest.raises(WorkbenchError, match="nothing to export"):
        _export(samples_db, tmp_path / "c", since_ns=2**62)


@pytest.mark.slow
def test_export_while_a_server_holds_the_database(serve_process, tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {"WORKBENCH_DATA_DIR": str(serve_process.data_dir), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "export", "--out", str(tmp_path / "b")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "workbench serve" in done.stderr and "stop the server" in done.stderr
    assert "Traceback" not in done.stderr
    shutil.rmtree(tmp_path / "b", ignore_errors=True)


def test_altered_proof_and_chain_are_named(bundle: Path) -> None:
    lines = _lines(bundle / "proofs.jsonl")
    a, b = orjson.loads(lines[40]), orjson.loads(lines[41])
    a["proof"][1] = "00" * 32
    b["chain"] = "11" * 32
    lines[40], lines[41] = orjson.dumps(a), orjson.dumps(b)
    _write_lines(bundle / "proofs.jsonl", lines)
    problems = _problems(bundle)
    assert any(
        f"proofs.jsonl line 41 (span {a['span_id']})" in p and "inclusion proof" in p for p in problems
    )
    assert any(f"proofs.jsonl line 42 (span {b['span_id']})" in p and "chain link" in p for p in problems)


def test_altered_redacted_line_is_named_without_the_reveal(bundle: Path) -> None:
    lines = _lines(bundle / "spans.jsonl")
    proofs = [orjson.loads(p) for p in _lines(bundle / "proofs.jsonl")]
    k = next(i for i, p in enumerate(proofs) if p["redacted"])
    lines[k] = lines[k].replace(b'"name":"', b'"name":"Y', 1)
    _write_lines(bundle / "spans.jsonl", lines)
    problems = _problems(bundle)
    assert any(
        f"spans.jsonl line {k + 1} (span {proofs[k]['span_id']}): redacted line altered" in p
        for p in problems
    )


def test_a_failed_export_leaves_no_partial_bundle(
    samples_db: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workbench.export.report as report

    def broken(*args: object, **kwargs: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(report, "render_report", broken)
    with pytest.raises(OSError, match="disk full"):
        _export(samples_db, tmp_path / "out" / "b")
    assert list((tmp_path / "out").iterdir()) == []


def test_time_range_selection_from_the_cli(samples_db: Settings, tmp_path: Path) -> None:
    with Store(samples_db.db_path, read_only=True) as store:
        cur = store.cursor()
        (first,) = cur.execute(
            "SELECT min(start_time_ns) FROM spans WHERE trace_id LIKE '0413e656%'"
        ).fetchone()
        (count,) = cur.execute("SELECT count(*) FROM spans WHERE start_time_ns < ?", [first + 1]).fetchone()
    runner = CliRunner()
    res = runner.invoke(cli, ["export", "--until", str(first + 1), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["counts"]["spans"] == count
    res = runner.invoke(cli, ["export", "--since", "2100-01-01T00:00:00Z", "--out", str(tmp_path / "none")])
    assert res.exit_code == 1 and "nothing to export" in res.output
    res = runner.invoke(cli, ["export", "--since", "yesterday", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 1 and "--since 'yesterday'" in res.output


def test_parallel_verify_finds_the_same_problems(bundle: Path) -> None:
    """Worker processes check unredacted lines; the problems they name must be the single-process ones."""
    assert verify_bundle(bundle, jobs=2).ok
    lines = _lines(bundle / "spans.jsonl")
    i = lines[6].index(b'"name":"') + 9
    lines[6] = lines[6][:i] + bytes([lines[6][i] ^ 0x01]) + lines[6][i + 1 :]
    lines[50] = lines[50][:-3]  # no longer JSON
    lines[60], lines[61] = lines[61], lines[60]
    del lines[70]
    _write_lines(bundle / "spans.jsonl", lines)
    single = sorted(map(str, verify_bundle(bundle, jobs=1).problems))
    parallel = sorted(map(str, verify_bundle(bundle, jobs=2).problems))
    assert single == parallel
    assert any("line 7 " in p and "ledger digest" in p for p in parallel)
    assert any("line 51 " in p and "not JSON" in p for p in parallel)

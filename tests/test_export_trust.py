"""Issue #13, the bundle side: a bundle nobody can quietly change. Steps are re-derived from their spans
and findings' evidence from their steps; an unpinned signer is not accepted; zips are read strictly.
Real DuckDB file, real bundles, the real CLI."""

from __future__ import annotations

import base64
import json
import warnings
import zipfile
from pathlib import Path

import duckdb
import orjson
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collectors.integrity import step_deriver, stored_columns_check
from collectors.normalize import NORMALIZER_VERSION, step_from_canonical
from workbench.cli import cli
from workbench.cli.loading import ingest_files
from workbench.export import ExportOptions, LedgerBroken, export_bundle, signing, verify_bundle
from workbench.export.redact import parse_kinds
from workbench.settings import Settings
from workbench.store.connection import Store
from workbench.store.explore_replay import step_order

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "sample_traces").glob("*.json"))
DERIVE = {"derive": step_from_canonical, "normalizer_version": NORMALIZER_VERSION}


@pytest.fixture
def samples_db(_isolated_data_dir: Path) -> Settings:
    settings = Settings.from_env()
    ingest_files(settings, SAMPLES)
    return settings


def _export(settings: Settings, out: Path, redact: str = "all") -> Path:
    with Store(settings.db_path, read_only=True) as store:
        export_bundle(
            store,
            settings.data_dir,
            ExportOptions(
                out=out,
                redact_kinds=parse_kinds(redact),
                row_check=stored_columns_check(),
                derive=step_deriver(store),
                normalizer_version=NORMALIZER_VERSION,
            ),
        )
    return out


def _problems(bundle: Path, **kw: object) -> list[str]:
    result = verify_bundle(bundle, **DERIVE, **kw)  # type: ignore[arg-type]
    assert not result.ok
    return [str(p) for p in result.problems]


def _reveal(settings: Settings) -> bytes:
    return next((settings.data_dir / "exports" / "reveal").glob("*.json")).read_bytes()


# --- steps and evidence are re-derived ------------------------------------------------------------------


def test_every_sample_step_and_finding_re_derives_with_and_without_the_reveal(
    samples_db: Settings, tmp_path: Path
) -> None:
    """No false alarm on honest bundles: redacted (masks compared as masks, and exactly with the reveal
    file) and unredacted."""
    redacted = _export(samples_db, tmp_path / "red")
    pub = (redacted / "public_key.pem").read_bytes()
    for kw in ({}, {"reveal": _reveal(samples_db)}):
        result = verify_bundle(redacted, pubkey=pub, **DERIVE, **kw)  # type: ignore[arg-type]
        assert result.trusted, [str(p) for p in result.problems]
        assert result.checked["steps"] == 94 and result.checked["evidence"] > 0
        assert set(result.seconds) == {"crypto", "derive"}
    plain_bundle = _export(samples_db, tmp_path / "plain", "none")
    plain = verify_bundle(plain_bundle, pubkey=pub, **DERIVE)  # type: ignore[arg-type]
    assert plain.trusted and plain.checked["steps"] == 94, [str(p) for p in plain.problems]


def _tool_step(settings: Settings) -> tuple[int, str, str]:
    """A tool step that a destructive-action finding quotes: (seq, trace id, evidence field)."""
    with duckdb.connect(str(settings.db_path)) as con:
        row = con.execute(
            "SELECT f.step_seq, f.trace_id, f.evidence_field FROM findings f"
            " JOIN steps s ON s.seq = f.step_seq"
            " WHERE f.evidence_field = 'tool_arguments' ORDER BY f.id LIMIT 1"
        ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1]), str(row[2])


def test_a_step_edited_in_the_database_is_named_by_trace_step_and_field(
    samples_db: Settings, tmp_path: Path
) -> None:
    """Catches: the steps table says `SELECT 1` where the sealed span says what really ran; every hash
    holds, but the step does not re-derive, so the export refuses to sign it and names trace, step, field."""
    seq, trace_id, _ = _tool_step(samples_db)
    with duckdb.connect(str(samples_db.db_path)) as con:
        con.execute("UPDATE steps SET tool_arguments = 'SELECT 1' WHERE seq = ?", [seq])
    with Store(samples_db.db_path, read_only=True) as store:
        number = list(step_order(store, trace_id)).index(seq) + 1
    with pytest.raises(LedgerBroken) as refused:
        _export(samples_db, tmp_path / "b", "none")
    assert f"trace {trace_id} step {number} (seq {seq}): field tool_arguments" in str(refused.value)
    assert not (tmp_path / "b").exists()


def test_a_step_edited_in_the_parquet_file_is_named_even_when_re_signed(
    samples_db: Settings, tmp_path: Path
) -> None:
    """Catches: an insider rewrites steps.parquet (redacted bundle) and re-signs with the genuine key."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    bundle = _export(samples_db, tmp_path / "b")
    table = pq.read_table(bundle / "steps.parquet")
    rows = table.to_pylist()
    k = next(i for i, r in enumerate(rows) if r["kind"] == "tool")
    rows[k]["tool_name"] = "read_only_lookup"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), bundle / "steps.parquet")
    _resign(bundle, samples_db)
    problems = _problems(bundle, pubkey=signing.public_key_path(samples_db.data_dir).read_bytes())
    assert any(f"(seq {rows[k]['seq']}): field tool_name" in p for p in problems), problems


def test_a_finding_whose_evidence_is_not_the_step_text_is_named(samples_db: Settings, tmp_path: Path) -> None:
    """Catches: a finding quoting words its step does not hold at the recorded offsets (edited in the
    bundle and re-signed by the exporter's own key; the database refuses to export such an edit)."""
    seq, trace_id, _ = _tool_step(samples_db)
    with duckdb.connect(str(samples_db.db_path), read_only=True) as con:
        fid = con.execute(
            "SELECT min(id) FROM findings WHERE step_seq = ? AND evidence_field = 'tool_arguments'", [seq]
        ).fetchone()[0]
    bundle = _export(samples_db, tmp_path / "b", "none")
    lines = (bundle / "findings.jsonl").read_bytes().splitlines()
    for i, line in enumerate(lines):
        record = orjson.loads(line)
        if record["id"] == fid:
            lines[i] = orjson.dumps({**record, "evidence_excerpt": "harmless"})
    (bundle / "findings.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    _resign(bundle, samples_db)
    problems = _problems(bundle)
    assert any(
        p.startswith("findings.jsonl line") and f"finding {fid} " in p and '"harmless" is not the step' in p
        for p in problems
    ), problems


# --- pinning ----------------------------------------------------------------------------------------------


def _resign(bundle: Path, settings: Settings, key: Ed25519PrivateKey | None = None) -> None:
    from workbench.export.bundle import file_entry

    key = key or signing.load_or_create_key(settings.data_dir)
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / "public_key.pem").write_bytes(signing.public_pem(key.public_key()))
    manifest["signing"]["public_key"] = signing.raw_public(key.public_key()).hex()
    for name in manifest["files"]:
        manifest["files"][name] = file_entry(bundle / name)
    data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    (bundle / "manifest.json").write_bytes(data)
    (bundle / "manifest.sig").write_bytes(base64.b64encode(key.sign(data)))


def test_export_prints_the_fingerprint_and_keeps_the_public_key_beside_the_private_one(
    samples_db: Settings, tmp_path: Path
) -> None:
    """Catches: a user with no way to find the key to pin, and a UI fingerprint `--pubkey` refuses."""
    runner = CliRunner()
    res = runner.invoke(cli, ["export", "--trace", "0413e656", "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    pub = signing.load_or_create_public(samples_db.data_dir)
    fp = signing.fingerprint(pub)
    assert f"signed with key {fp}" in res.output and fp.startswith("sha256:")
    public_file = signing.public_key_path(samples_db.data_dir)
    assert public_file.name == "signing.pub.pem" and public_file.read_bytes() == signing.public_pem(pub)
    from workbench.ui.export_job import summarize

    assert summarize(tmp_path / "b").fingerprint == fp  # the Export page's string
    for pin in (fp, str(public_file)):
        res = runner.invoke(cli, ["verify", str(tmp_path / "b"), "--pubkey", pin])
        assert res.exit_code == 0 and "bundle OK" in res.output and "(pinned)" in res.output, res.output
    # A key made before the public file existed gets one on next use.
    public_file.unlink()
    signing.load_or_create_key(samples_db.data_dir)
    assert public_file.read_bytes() == signing.public_pem(pub)


def test_a_re_signed_bundle_is_refused_unpinned_and_fails_pinned(
    samples_db: Settings, tmp_path: Path
) -> None:
    """Catches: a forger's bundle (findings and the entries sealing them removed, so that it holds
    together, re-signed with their key) accepted by exit code."""
    bundle = _export(samples_db, tmp_path / "b")
    (bundle / "findings.jsonl").write_bytes(b"")
    (bundle / "entries.jsonl").write_bytes(b"")
    _resign(bundle, samples_db, Ed25519PrivateKey.generate())
    runner = CliRunner()
    res = runner.invoke(cli, ["verify", str(bundle), "--json"])
    assert res.exit_code == 3, res.output
    out = json.loads(res.output)
    assert out["ok"] is False and out["reason"] == "unpinned" and out["pinned"] is False
    res = runner.invoke(cli, ["verify", str(bundle)])
    assert res.exit_code == 3 and "NOT TRUSTED" in res.output
    fp = signing.fingerprint(signing.load_or_create_public(samples_db.data_dir))
    for pin in (fp, str(signing.public_key_path(samples_db.data_dir))):
        res = runner.invoke(cli, ["verify", str(bundle), "--pubkey", pin, "--json"])
        assert res.exit_code == 1, res.output
        out = json.loads(res.output)
        assert out["reason"] == "problems" and any("wrong key" in p["problem"] for p in out["problems"])
    res = runner.invoke(cli, ["verify", str(bundle), "--trust-bundle-key"])  # the explicit opt-out
    assert res.exit_code == 0 and "NOT pinned" in res.output


# --- zips are read strictly -------------------------------------------------------------------------------


def _zip_with(src: Path, dest: Path, extra: list[tuple[str, bytes]], first: bool) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we write on purpose
        with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            if first:
                for name, data in extra:
                    zf.writestr(name, data)
            for p in sorted(src.iterdir()):
                zf.write(p, p.name)
            if not first:
                for name, data in extra:
                    zf.writestr(name, data)
    return dest


@pytest.mark.parametrize(
    ("extra", "first", "member", "why"),
    [
        ([("report.html", b"<p>all clear</p>"), ("findings.jsonl", b"")], True, "report.html", "duplicate"),
        ([("../evil.html", b"x")], False, "../evil.html", "'..'"),
        ([("/etc/cron.d/x", b"x")], False, "/etc/cron.d/x", "absolute"),
        ([("notes.txt", b"x")], False, "notes.txt", "not listed in the manifest"),
    ],
    ids=["duplicate-members", "dotdot-member", "absolute-member", "unlisted-member"],
)
def test_zip_members_are_read_strictly(
    samples_db: Settings, tmp_path: Path, extra: list[tuple[str, bytes]], first: bool, member: str, why: str
) -> None:
    """Catches: a forged report.html first and the genuine one after (Python reads the last copy,
    `unzip -p` the first); members outside the bundle; members the signed manifest does not list."""
    src = _export(samples_db, tmp_path / "b")
    forged = _zip_with(src, tmp_path / "forged.zip", extra, first)
    pub = (src / "public_key.pem").read_bytes()
    problems = _problems(forged, pubkey=pub)
    assert any(p.startswith(f"{member}:") and why in p for p in problems), problems
    fp = signing.fingerprint(signing.load_public_key(pub, "public_key.pem"))
    res = CliRunner().invoke(cli, ["verify", str(forged), "--pubkey", fp])
    assert res.exit_code == 1 and member in res.output

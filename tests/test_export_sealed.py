"""Bundle schema 2 (issue #13): the sealed span bytes (spans.pb) against the JSON lines, the derived rows
(findings, annotations, probe results) against their ledger entries, and the external checkpoint the
bundle was proven against. Each tamper is made in the bundle and re-signed with the exporter's own key,
so every hash and the signature hold and only the new check can name it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import orjson
import pytest

from collectors.integrity import step_deriver, stored_columns_check
from collectors.normalize import NORMALIZER_VERSION, step_from_canonical
from workbench.cli.loading import ingest_files
from workbench.export import ExportOptions, LedgerBroken, export_bundle, signing, verify_bundle
from workbench.export.bundle_files import file_entry, varint
from workbench.export.verify_base import records
from workbench.model import ProbeResult
from workbench.settings import Settings
from workbench.store import treehead
from workbench.store.annotations import add_annotation
from workbench.store.connection import Store
from workbench.store.probes import write_result

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "sample_traces").glob("*.json"))


@pytest.fixture
def settings(_isolated_data_dir: Path) -> Settings:
    settings = Settings.from_env()
    ingest_files(settings, SAMPLES)
    return settings


def _export(settings: Settings, out: Path, checkpoint: Path | None = None) -> Path:
    with Store(settings.db_path, read_only=True) as store:
        export_bundle(
            store,
            settings.data_dir,
            ExportOptions(
                out=out,
                row_check=stored_columns_check(),
                derive=step_deriver(),
                normalizer_version=NORMALIZER_VERSION,
                checkpoint=checkpoint,
            ),
        )
    return out


def _resign(bundle: Path, settings: Settings) -> None:
    key = signing.load_or_create_key(settings.data_dir)
    manifest = json.loads((bundle / "manifest.json").read_text())
    for name in manifest["files"]:
        manifest["files"][name] = file_entry(bundle / name)
    data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    (bundle / "manifest.json").write_bytes(data)
    (bundle / "manifest.sig").write_bytes(base64.b64encode(key.sign(data)))


def _problems(bundle: Path, settings: Settings) -> list[str]:
    key = signing.load_or_create_key(settings.data_dir).public_key()
    result = verify_bundle(
        bundle,
        pubkey=signing.public_pem(key),
        derive=step_from_canonical,
        normalizer_version=NORMALIZER_VERSION,
    )
    return [str(p) for p in result.problems]


def _edit_lines(path: Path, edit: object) -> None:
    lines = path.read_bytes().splitlines()
    lines = edit(lines)  # type: ignore[operator]
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def test_an_honest_bundle_proves_its_span_bytes_and_derived_rows(settings: Settings, tmp_path: Path) -> None:
    """No false alarm: every span line agrees with spans.pb, every derived row with its entry."""
    bundle = _export(settings, tmp_path / "b")
    key = signing.load_or_create_key(settings.data_dir).public_key()
    result = verify_bundle(
        bundle,
        pubkey=signing.public_pem(key),
        derive=step_from_canonical,
        normalizer_version=NORMALIZER_VERSION,
    )
    assert result.trusted, [str(p) for p in result.problems]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["schema_version"] == 3
    assert (
        result.checked["entries"]
        == manifest["counts"]["findings"]
        + manifest["counts"]["annotations"]
        + (manifest["counts"]["probe_results"])
    )
    assert result.checked["entries"] > 0 and result.checked["span_lines"] > 0
    assert set(result.seconds) == {"crypto", "derive"}


def test_a_spans_pb_record_altered_is_named(settings: Settings, tmp_path: Path) -> None:
    """Catches: sealed bytes in spans.pb that no longer hash to the ledger digest."""
    bundle = _export(settings, tmp_path / "b", None)
    recs = list(records(iter([(bundle / "spans.pb").read_bytes()])))
    k = next(i for i, r in enumerate(recs) if r)
    recs[k] = recs[k][:-1] + bytes([recs[k][-1] ^ 1])
    (bundle / "spans.pb").write_bytes(b"".join(varint(len(r)) + r for r in recs))
    _resign(bundle, settings)
    problems = _problems(bundle, settings)
    assert any(
        p.startswith(f"spans.pb line {k + 1} ") and "does not hash to the ledger digest" in p
        for p in problems
    ), problems


def test_a_span_line_that_disagrees_with_spans_pb_is_named(settings: Settings, tmp_path: Path) -> None:
    """Catches: a JSON line an auditor reads saying something other than the sealed bytes beside it."""
    bundle = _export(settings, tmp_path / "b")

    def edit(lines: list[bytes]) -> list[bytes]:
        doc = orjson.loads(lines[3])
        doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] = "harmless"
        lines[3] = orjson.dumps(doc)
        return lines

    _edit_lines(bundle / "spans.jsonl", edit)
    _resign(bundle, settings)
    problems = _problems(bundle, settings)
    assert any(
        p.startswith("spans.jsonl line 4 ") and "does not say what its record in spans.pb" in p
        for p in problems
    ), problems


def test_a_finding_removed_from_the_bundle_is_named(settings: Settings, tmp_path: Path) -> None:
    """Catches: a finding deleted from findings.jsonl (its ledger entry still sealed in entries.jsonl)."""
    bundle = _export(settings, tmp_path / "b")
    gone = orjson.loads((bundle / "findings.jsonl").read_bytes().splitlines()[0])
    _edit_lines(bundle / "findings.jsonl", lambda lines: lines[1:])
    _resign(bundle, settings)
    problems = _problems(bundle, settings)
    assert any(
        p.startswith("findings.jsonl:")
        and f"finding {gone['id']}, sealed by ledger entry" in p
        and "deleted" in p
        for p in problems
    ), problems


def test_a_finding_edited_in_the_bundle_is_named_with_its_field(settings: Settings, tmp_path: Path) -> None:
    """Catches: a finding whose severity was lowered in findings.jsonl."""
    bundle = _export(settings, tmp_path / "b")

    def edit(lines: list[bytes]) -> list[bytes]:
        lines[1] = orjson.dumps({**orjson.loads(lines[1]), "severity": "info"})
        return lines

    _edit_lines(bundle / "findings.jsonl", edit)
    _resign(bundle, settings)
    problems = _problems(bundle, settings)
    assert any(
        p.startswith("findings.jsonl line 2") and "field(s) severity differ" in p and "edited" in p
        for p in problems
    ), problems


def test_an_entry_proof_altered_is_named(settings: Settings, tmp_path: Path) -> None:
    """Catches: an entry whose audit path does not lead to the signed entries root."""
    bundle = _export(settings, tmp_path / "b")

    def edit(lines: list[bytes]) -> list[bytes]:
        rec = orjson.loads(lines[0])
        rec["proof"][0] = "00" * 32
        lines[0] = orjson.dumps(rec)
        return lines

    _edit_lines(bundle / "entries.jsonl", edit)
    _resign(bundle, settings)
    problems = _problems(bundle, settings)
    assert any(p.startswith("entries.jsonl line 1") and "inclusion proof" in p for p in problems), problems


def _checkpoint(settings: Settings, path: Path) -> Path:
    key = signing.load_or_create_key(settings.data_dir)
    with Store(settings.db_path, read_only=True) as store:
        head = treehead.current(store)
    path.write_text(treehead.sign(head, key), encoding="utf-8")
    return path


def test_the_bundle_carries_the_external_checkpoint_and_proves_it(settings: Settings, tmp_path: Path) -> None:
    """The latest signed tree head of the log travels in the bundle, with consistency proofs that hold."""
    log = _checkpoint(settings, tmp_path / "heads.log")
    ingest_files(settings, SAMPLES[:1])  # the ledger grows past the head
    bundle = _export(settings, tmp_path / "b", log)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["ledger"]["external_checkpoint"]["note"] == log.read_text()
    key = signing.load_or_create_key(settings.data_dir).public_key()
    result = verify_bundle(bundle, pubkey=signing.public_pem(key))
    assert result.trusted and result.checked["external_checkpoint"] == 1, [str(p) for p in result.problems]


def test_a_bundle_checkpoint_its_tree_does_not_extend_is_named(settings: Settings, tmp_path: Path) -> None:
    """Catches: a bundle whose span tree is not an extension of the signed head it carries (here a head
    signed for a larger ledger, as after the tail was cut), and the export refusing such a ledger."""
    bundle = _export(settings, tmp_path / "b")
    later = tmp_path / "later"
    later.mkdir()
    key = signing.load_or_create_key(settings.data_dir)
    with Store(settings.db_path, read_only=True) as store:
        head = treehead.current(store)
    bigger = treehead.TreeHead(head.size + 3, head.root, head.entries_size, head.entries_root, head.time)
    note = treehead.sign(bigger, key)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["ledger"]["external_checkpoint"] = {
        "source": "heads.log",
        "note": note,
        "spans_consistency": [],
        "entries_consistency": [],
    }
    (bundle / "manifest.json").write_bytes(orjson.dumps(manifest))
    _resign(bundle, settings)
    problems = _problems(bundle, settings)
    assert any(
        p.startswith("manifest.json:") and "span tree" in p and "does not extend the external checkpoint" in p
        for p in problems
    ), problems
    log = tmp_path / "heads.log"
    log.write_text(note, encoding="utf-8")
    with pytest.raises(LedgerBroken, match="tail truncated"):
        _export(settings, tmp_path / "c", log)


def _annotate_and_probe(settings: Settings) -> None:
    """An annotation and a probe result through the store API, so each is sealed by a ledger entry."""
    with Store(settings.db_path) as store:
        cur = store.cursor()
        trace_id, seq = cur.execute(
            "SELECT trace_id, max(seq) FROM spans GROUP BY trace_id LIMIT 1"
        ).fetchone()
        add_annotation(store, trace_id, seq, "ana", "reviewed: the agent was told to delete the table")
        cur.execute(
            "INSERT INTO probe_runs (trace_id, step_seq, analyses, status, progress, params, provenance, "
            "created_at) VALUES (?, ?, '[\"probes\"]', 'done', 1.0, '{}', '{\"model_id\": \"tiny\"}', now())",
            [trace_id, seq],
        )
        run_id = cur.execute("SELECT max(id) FROM probe_runs").fetchone()[0]
        write_result(
            store, ProbeResult(run_id, "probe:deception", {"score": 0.9}, {"score": 0.9, "fired": True})
        )


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [("annotations.jsonl", "text", "nothing to see"), ("probe_results.jsonl", "summary", {"score": 0.1})],
)
def test_an_annotation_or_probe_result_edited_in_the_bundle_is_named(
    settings: Settings, tmp_path: Path, name: str, field: str, value: object
) -> None:
    """Catches: an annotation's text, or a probe result's score, changed in the bundle."""
    _annotate_and_probe(settings)
    bundle = _export(settings, tmp_path / "b")
    assert _problems(bundle, settings) == []

    def edit(lines: list[bytes]) -> list[bytes]:
        lines[0] = orjson.dumps({**orjson.loads(lines[0]), field: value})
        return lines

    _edit_lines(bundle / name, edit)
    _resign(bundle, settings)
    problems = _problems(bundle, settings)
    assert any(p.startswith(f"{name} line 1") and f"field(s) {field} differ" in p for p in problems), problems


def test_an_annotation_deleted_from_the_bundle_is_named(settings: Settings, tmp_path: Path) -> None:
    """Catches: an annotation removed from annotations.jsonl while its entry stays sealed."""
    _annotate_and_probe(settings)
    bundle = _export(settings, tmp_path / "b")
    (bundle / "annotations.jsonl").write_bytes(b"")
    _resign(bundle, settings)
    problems = _problems(bundle, settings)
    assert any(p.startswith("annotations.jsonl:") and "(deleted row)" in p for p in problems), problems

"""The Export page, on a real DuckDB file holding the five sample incidents and one trace with secrets.

The page runs under `streamlit.testing.v1.AppTest` with the Store held open read-write, as inside
`workbench serve`; the bundle it writes is checked again here with `verify_bundle` pinned to the data
directory's key, and its every byte (zip members decompressed) is searched for the seeded values.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from streamlit.testing.v1 import AppTest

from collectors.exporter import DuckDBSpanExporter
from sample_traces.catalog import get
from workbench.cli.loading import ingest_files
from workbench.export import signing, verify_bundle
from workbench.settings import Settings
from workbench.store.connection import Store
from workbench.ui import context, export_job

PAGE = Path(__file__).resolve().parent.parent / "workbench" / "ui" / "app_pages" / "export.py"
SAMPLE_NAMES = ("db_deletion", "prompt_injection", "weekly_report", "tree_of_thought", "runaway_reasoning")
SEEDED = {
    "aws": "AKIAZ7QW3XKEXAMPLE12",
    "email": "dana.whitfield@example-corp.com",
    "card": "4539 1488 0343 6467",
}


def _seed_trace(settings: Settings) -> str:
    """A real OpenTelemetry SDK trace whose tool call carries an AWS key, an email and a card number."""
    exporter = DuckDBSpanExporter(settings=settings)
    provider = TracerProvider(resource=Resource.create({"service.name": "leaky-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.ui_export")
    with tracer.start_as_current_span("invoke_agent leaky") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        with tracer.start_as_current_span("execute_tool send_email") as span:
            span.set_attribute("gen_ai.operation.name", "execute_tool")
            span.set_attribute("gen_ai.tool.name", "send_email")
            span.set_attribute(
                "gen_ai.tool.call.arguments",
                json.dumps({"to": SEEDED["email"], "body": f"card {SEEDED['card']}, key {SEEDED['aws']}"}),
            )
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    return trace_id


@pytest.fixture
def served(_isolated_data_dir: Path) -> Iterator[tuple[Settings, str]]:
    """The samples plus the seeded trace, with the Store open read-write and handed to the pages."""
    settings = Settings.from_env()
    totals = ingest_files(settings, [get(n).path for n in SAMPLE_NAMES])
    assert totals.accepted > 0 and not totals.errors
    trace_id = _seed_trace(settings)
    store = Store(settings.db_path)
    context.set_store(store, settings)
    try:
        yield settings, trace_id
    finally:
        context.set_store(None)
        store.close()


def _page(**query: str) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def _bytes_of(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        return [(path.name, path.read_bytes())] + [(n, zf.read(n)) for n in zf.namelist()]


def test_export_page_exports_one_trace_verifies_it_and_leaks_no_secret(served: tuple[Settings, str]) -> None:
    settings, trace_id = served
    at = _page(trace=trace_id[:10])  # deep link with a prefix, as the replay's URLs allow
    assert not at.exception
    assert at.multiselect(key="export_traces").value == [trace_id]
    assert at.radio(key="export_format").value == "zip"
    assert set(at.multiselect(key="export_kinds").value) >= {"secret", "email", "card"}

    at.button(key="export_go").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any(s.value.startswith("verify: OK") for s in at.success)
    progress = at.get("progress")
    assert progress and progress[-1].proto.value == 100  # the bar reached the end
    assert at.get("download_button")  # the zip is offered

    bundles = sorted(export_job.exports_dir(settings.data_dir).glob("bundle-*.zip"))
    assert len(bundles) == 1
    bundle = bundles[0]
    summary = export_job.summarize(bundle)
    assert summary.traces == 1 and summary.spans == 2 and summary.redactions >= 3
    shown = " ".join(m.value for m in at.markdown)
    assert summary.merkle_root in shown and summary.chain_head in shown and summary.key_id in shown
    assert [int(m.value) for m in at.metric][:2] == [2, 1]  # spans, traces

    held = (
        context.get_store()
        .cursor()
        .execute(
            "SELECT count(*) FROM steps WHERE trace_id = ? AND contains(tool_arguments, ?)",
            [trace_id, SEEDED["aws"]],
        )
    )
    assert held.fetchone()[0] == 1  # the database holds the secret: the check below is not vacuous
    # Independently of the page: pinned to this data directory's key, the bundle verifies.
    pub = signing.public_pem(signing.load_or_create_key(settings.data_dir).public_key())
    assert verify_bundle(bundle, pubkey=pub).ok
    for name, data in _bytes_of(bundle):
        for value in [*SEEDED.values(), SEEDED["card"].replace(" ", "")]:
            assert value.encode() not in data, f"{value!r} leaked into {name}"

    # The earlier-bundles table lists it.
    table = at.dataframe[-1].value
    assert list(table["bundle"]) == [bundle.name] and int(table["spans"].iloc[0]) == 2


def test_export_page_time_range_writes_a_directory(served: tuple[Settings, str]) -> None:
    settings, _ = served
    first = context.get_store().cursor().execute("SELECT min(start_time_ns) FROM spans").fetchone()[0]
    day = datetime.fromtimestamp(first / 1e9, UTC).date()
    at = _page()
    at.radio(key="export_mode").set_value("Time range").run()
    at.date_input(key="export_dates").set_value((day, day)).run()
    at.radio(key="export_format").set_value("directory").run()
    at.button(key="export_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(s.value.startswith("verify: OK") for s in at.success)
    (bundle,) = export_job.exports_dir(settings.data_dir).glob("bundle-*")
    assert bundle.is_dir() and (bundle / "manifest.sig").is_file()
    assert export_job.summarize(bundle).spans > 0


def test_export_page_names_a_bad_deep_link_and_an_unreadable_bundle(served: tuple[Settings, str]) -> None:
    settings, _ = served
    exports = export_job.exports_dir(settings.data_dir)
    exports.mkdir(parents=True)
    (exports / "bundle-broken.zip").write_bytes(b"not a zip")
    at = _page(trace="ffffffffffffnotatrace")
    assert not at.exception
    # Warnings quote the link and file names as escaped Markdown (text only): read them as shown.
    warnings = re.sub(r"\\(.)", r"\1", " ".join(w.value for w in at.warning))
    assert "?trace=" in warnings and "bundle-broken.zip" in warnings
    assert at.multiselect(key="export_traces").value == []
    assert at.button(key="export_go").disabled  # nothing selected, nothing to export

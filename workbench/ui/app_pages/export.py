"""Export: write a signed, redacted audit bundle from the running server, verify it, download it.

`workbench export` cannot open the database while `workbench serve` holds it, so inside the server this
page is where bundles are made. The work is in `workbench.ui.export_job`; this script only asks and shows.
"""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import streamlit as st

from workbench.errors import WorkbenchError
from workbench.export.redact import KINDS, parse_kinds
from workbench.store import explore, queries
from workbench.ui import data, export_job, render
from workbench.ui.context import get_settings

store = data.store()
settings = get_settings()
st.markdown("### Export")
st.caption(
    "A signed bundle an auditor can check offline with `workbench verify BUNDLE --pubkey KEY`: spans, "
    "steps, findings, probe results, annotations, Merkle proofs and a report."
)

traces = explore.search_traces(store, explore.TraceFilter(), limit=500)
labels = {t.trace_id: f"{t.root_name} · {t.service_name} · {t.trace_id[:12]}" for t in traces}
linked: list[str] = []
if st.query_params.get("trace"):
    try:
        linked = [queries.resolve_trace_id(store, st.query_params["trace"])]
    except WorkbenchError as exc:
        st.warning(render.md_text(f"?trace=: {exc}"))
for tid in linked:
    labels.setdefault(tid, tid)

mode = st.radio("Select", ["Traces", "Time range"], horizontal=True, key="export_mode")
chosen: list[str] = []
since_ns = until_ns = None
if mode == "Traces":
    chosen = st.multiselect(
        "Traces", list(labels), default=linked, format_func=labels.__getitem__, key="export_traces"
    )
else:
    dates = st.date_input("Spans started between (UTC dates, inclusive)", value=[], key="export_dates")
    if isinstance(dates, tuple) and dates:
        since_ns, until_ns = export_job.days_ns(dates[0], dates[-1])

try:
    default_kinds = list(parse_kinds(settings.export_redact_kinds))
except ValueError as exc:
    st.warning(f"WORKBENCH_EXPORT_REDACT_KINDS: {exc}; defaulting to all")
    default_kinds = list(KINDS)
c1, c2 = st.columns([3, 1])
kinds = c1.multiselect("Redact", list(KINDS), default=default_kinds, key="export_kinds")
as_zip = c2.radio("Write", ["zip", "directory"], key="export_format") == "zip"

nothing = (mode == "Traces" and not chosen) or (mode == "Time range" and since_ns is None)


def _progress(done: int, total: int) -> None:
    bar.progress(done / total, text=f"{done:,} of {total:,} spans")


if st.button("Export and verify", type="primary", disabled=nothing, key="export_go"):
    with st.status("Exporting…", expanded=True) as status:
        bar = st.progress(0.0, text="spans")
        try:
            result = export_job.run_export(
                store,
                settings.data_dir,
                trace_ids=chosen,
                since_ns=since_ns,
                until_ns=until_ns,
                redact_kinds=tuple(kinds),
                as_zip=as_zip,
                on_progress=_progress,
                checkpoint_log=settings.checkpoint_log,
            )
            st.write(f"wrote {result.path.name}; verifying…")
            verdict = export_job.verify_own(settings.data_dir, result)
        except WorkbenchError as exc:
            status.update(label="Export failed", state="error")
            st.error(render.md_text(exc))
        else:
            st.session_state["export_last"] = export_job.Outcome(result.path, verdict)
            done = "Exported and verified" if verdict.ok else "Exported: verification FAILED"
            status.update(label=done, state="complete" if verdict.ok else "error")

last: export_job.Outcome | None = st.session_state.get("export_last")
if last is not None:
    summary = export_job.summarize(last.path)
    st.markdown("#### " + render.md_text(summary.path.name))
    m1, m2, m3, m4, m5 = st.columns(5)
    m1.metric("Spans", summary.spans)
    m2.metric("Traces", summary.traces)
    m3.metric("Findings", summary.findings)
    m4.metric("Annotations", summary.annotations)
    m5.metric("Redacted values", summary.redactions)
    st.markdown(
        f"- Merkle root (covered tree): `{summary.merkle_root}`\n"
        f"- Chain head: `{summary.chain_head}`\n"
        f"- Signing key fingerprint (SHA-256 of the Ed25519 public key): `{summary.fingerprint}`"
    )
    if last.verdict.ok:
        st.success("verify: OK (" + ", ".join(f"{v} {k}" for k, v in last.verdict.checked.items()) + ")")
    else:
        st.error(f"verify: {len(last.verdict.problems) + last.verdict.dropped} problem(s)")
        st.dataframe(pd.DataFrame([asdict(p) for p in last.verdict.problems]), hide_index=True)
    if summary.path.is_file():
        st.download_button(
            "Download the bundle",
            data=summary.path.read_bytes,  # read when clicked, on its own thread, not on every rerun
            on_click="ignore",
            file_name=summary.path.name,
            mime="application/zip",
            key="export_download",
        )
    else:
        st.caption(render.md_text(f"Written as a directory: {summary.path}"))

st.markdown("#### Signing key")
own_key = export_job.signing_key(settings.data_dir)
k1, k2 = st.columns([3, 1])
k1.markdown(
    f"Fingerprint: `{own_key.fingerprint}`  \n"
    "An auditor pins it: `workbench verify BUNDLE --pubkey` with this fingerprint or the public key file."
)
k2.download_button(
    "Download the public key",
    data=own_key.pem,
    file_name=own_key.path.name,
    mime="application/x-pem-file",
    key="export_pubkey",
)

st.markdown("#### Earlier bundles")
bundles, unreadable = export_job.list_bundles(settings.data_dir)
for line in unreadable:
    st.warning(render.md_text(line))
if not bundles:
    st.caption(render.md_text(f"none yet in {export_job.exports_dir(settings.data_dir)}"))
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "bundle": b.path.name,
                    "created": b.created_at,
                    "spans": b.spans,
                    "traces": b.traces,
                    "findings": b.findings,
                    "redactions": b.redactions,
                    "MB": round(b.size_bytes / 1e6, 2),
                    "merkle root": b.merkle_root[:16],
                    "key": b.key_id[:16],
                }
                for b in bundles
            ]
        ),
        hide_index=True,
    )

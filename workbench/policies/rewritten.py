"""The `span-rewritten` rule: a span delivered again with its id but different bytes.

Why not a step rule: the rewritten copy deliberately has no step (replay and counts must not see it
twice), so the rule reads the store's conflicting versions instead. A retrying exporter resends the
same bytes, which are deduplicated; different bytes under the same id mean the sender, or something
between, changed a record after the fact.
"""

from __future__ import annotations

from collections.abc import Sequence

from workbench.model import Finding, Severity
from workbench.store import queries
from workbench.store.connection import Store

RULE_ID = "span-rewritten"


def rewritten_findings(
    store: Store, trace_id: str, versions: Sequence[tuple[int, str, int, bytes, bytes]] | None = None
) -> list[Finding]:
    """One high finding per conflicting version stored for this trace, on the original span's step.
    `versions`: the trace's `queries.span_versions`, when the caller read them for many traces at once."""
    out = []
    if versions is None:
        versions = queries.span_versions(store, trace_id)
    for seq, span_id, first_seq, first_digest, digest in versions:
        out.append(
            Finding(
                trace_id=trace_id,
                step_seq=first_seq,
                span_id=span_id,
                rule_id=RULE_ID,
                severity=Severity.HIGH,
                title=f"Span {span_id} was delivered again with different content",
                explanation=(
                    "A span with the same trace and span id but different bytes arrived after the first "
                    "was stored. Exporters retry with identical bytes; a changed copy means the record was "
                    "altered after the fact. Both versions are kept and sealed; the replay shows the first."
                ),
                evidence_excerpt=f"first sha256 {first_digest.hex()} (seq {first_seq}); "
                f"rewritten sha256 {digest.hex()} (seq {seq})",
                details={
                    "first_seq": first_seq,
                    "first_digest": first_digest.hex(),
                    "version_seq": seq,
                    "version_digest": digest.hex(),
                },
            )
        )
    return out

-- OTLP log records (issue #15), sealed in the span ledger and joined to their step.
--
-- A log record takes the next ingest seq like a span does, so the ledger (hash chain, Merkle tree,
-- checkpoints, signed tree heads) covers raw spans and raw log records alike: `ledger.seq` is in
-- exactly one of `spans` or `logs`. Log records have no step of their own; a GenAI event (a record with
-- a trace and span id) fills its span's step where the span lacks the content, and the step records
-- which fields came from events (steps.event_fields). See docs/ledger.md.

CREATE TABLE logs (
    seq                      BIGINT PRIMARY KEY,    -- ingest order, shared with spans; the ledger's index
    trace_id                 VARCHAR NOT NULL,      -- lowercase hex, '' when not in a trace
    span_id                  VARCHAR NOT NULL,      -- lowercase hex, '' when not in a span
    time_ns                  BIGINT NOT NULL,       -- time_unix_nano (0: unknown)
    observed_time_ns         BIGINT NOT NULL,
    severity_number          INTEGER NOT NULL,
    severity_text            VARCHAR NOT NULL,
    event_name               VARCHAR NOT NULL,      -- LogRecord.event_name or the `event.name` attribute
    body                     JSON,                  -- the AnyValue as JSON; NULL when absent
    attributes               JSON NOT NULL,
    flags                    UINTEGER NOT NULL,
    dropped_attributes_count UINTEGER NOT NULL,
    service_name             VARCHAR NOT NULL,
    resource                 JSON NOT NULL,
    resource_schema_url      VARCHAR NOT NULL,
    scope_name               VARCHAR NOT NULL,
    scope_version            VARCHAR NOT NULL,
    scope_attributes         JSON NOT NULL,
    scope_schema_url         VARCHAR NOT NULL,
    truncations              JSON NOT NULL,         -- values cut in the columns above; canonical keeps all
    canonical                BLOB NOT NULL,         -- deterministic protobuf ResourceLogs of this record alone
    digest                   BLOB NOT NULL,         -- SHA-256(canonical), as in the ledger: redelivery lookup
    source                   VARCHAR NOT NULL,
    batch_id                 BIGINT NOT NULL,
    received_at              TIMESTAMPTZ NOT NULL
);

-- The join to a step and redelivery are index lookups, not scans.
CREATE INDEX logs_trace_id ON logs (trace_id);
CREATE INDEX logs_digest ON logs (digest);

ALTER TABLE steps ADD COLUMN event_fields VARCHAR;         -- JSON list of fields filled from GenAI events

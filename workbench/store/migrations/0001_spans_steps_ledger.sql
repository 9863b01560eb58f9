-- The capture spine: raw spans (lossless), normalized steps (re-derivable), and the ledger.

CREATE SEQUENCE IF NOT EXISTS ingest_batch_seq START 1;

CREATE TABLE spans (
    seq                     BIGINT PRIMARY KEY,     -- ingest order, 1-based, gapless; the ledger's index
    trace_id                VARCHAR NOT NULL,       -- lowercase hex, 32 chars
    span_id                 VARCHAR NOT NULL,       -- lowercase hex, 16 chars
    parent_span_id          VARCHAR NOT NULL,       -- '' for a root span
    name                    VARCHAR NOT NULL,
    kind                    TINYINT NOT NULL,       -- OTLP SpanKind
    start_time_ns           BIGINT NOT NULL,
    end_time_ns             BIGINT NOT NULL,
    status_code             TINYINT NOT NULL,       -- 0 unset, 1 ok, 2 error
    status_message          VARCHAR NOT NULL,
    trace_state             VARCHAR NOT NULL,
    flags                   UINTEGER NOT NULL,
    service_name            VARCHAR NOT NULL,
    resource                JSON NOT NULL,
    resource_schema_url     VARCHAR NOT NULL,
    scope_name              VARCHAR NOT NULL,
    scope_version           VARCHAR NOT NULL,
    scope_attributes        JSON NOT NULL,
    scope_schema_url        VARCHAR NOT NULL,
    attributes              JSON NOT NULL,
    events                  JSON NOT NULL,
    links                   JSON NOT NULL,
    dropped_attributes_count UINTEGER NOT NULL,
    dropped_events_count    UINTEGER NOT NULL,
    dropped_links_count     UINTEGER NOT NULL,
    truncations             JSON NOT NULL,          -- values cut in the columns above; canonical keeps all
    canonical               BLOB NOT NULL,          -- deterministic protobuf ResourceSpans of this span alone
    source                  VARCHAR NOT NULL,       -- 'otlp-http', 'otlp-grpc', 'file:<name>', 'exporter'
    batch_id                BIGINT NOT NULL,
    received_at             TIMESTAMPTZ NOT NULL
);

CREATE TABLE steps (
    seq               BIGINT PRIMARY KEY,           -- the span's seq: one step per span
    trace_id          VARCHAR NOT NULL,
    span_id           VARCHAR NOT NULL,
    parent_span_id    VARCHAR NOT NULL,
    kind              VARCHAR NOT NULL,
    name              VARCHAR NOT NULL,
    start_time_ns     BIGINT NOT NULL,
    end_time_ns       BIGINT NOT NULL,
    convention        VARCHAR NOT NULL,
    service_name      VARCHAR NOT NULL,
    actor             VARCHAR,
    operation         VARCHAR,
    model             VARCHAR,
    provider          VARCHAR,
    tool_name         VARCHAR,
    tool_call_id      VARCHAR,
    tool_arguments    VARCHAR,
    tool_result       VARCHAR,
    input_text        VARCHAR,
    output_text       VARCHAR,
    reasoning_text    VARCHAR,
    tokens_in         BIGINT,
    tokens_out        BIGINT,
    tokens_reasoning  BIGINT,
    tokens_cached     BIGINT,
    cost_usd          DOUBLE,
    is_error          BOOLEAN NOT NULL,
    error             VARCHAR,
    session_id        VARCHAR,
    user_id           VARCHAR
);

CREATE TABLE ledger (
    seq     BIGINT PRIMARY KEY,
    digest  BLOB NOT NULL,                          -- SHA-256(canonical)
    chain   BLOB NOT NULL                           -- SHA-256(chain[seq-1] || digest)
);

CREATE TABLE ledger_checkpoints (
    tree_size    BIGINT PRIMARY KEY,                -- the checkpoint covers seq 1..tree_size
    merkle_root  BLOB NOT NULL,                     -- RFC 6962 root over the digests
    chain_head   BLOB NOT NULL,                     -- chain[tree_size]
    created_at   TIMESTAMPTZ NOT NULL
);

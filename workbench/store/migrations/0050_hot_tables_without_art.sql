-- The tables every commit appends to (spans, steps, ledger) without ART indexes (issue #20).
--
-- Why: DuckDB rewrites a table's ART indexes at every checkpoint, so with a primary key on seq and the
-- span_id index a checkpoint after 5,000 new spans took 25 s at 200,000 stored spans against 1-3 s for
-- the same table without them (DuckDB 1.5.5, benchmarks/growth.py), and ingest slowed as the store
-- grew. Nothing needs them: the one writer hands out seqs gapless and unique (`ledger verify` checks
-- that), seq lookups are served by the zone maps of seq-ordered row groups, and the redelivery lookup
-- is a set of key hashes in the writer's memory (workbench/store/writer.py `SpanKeys`).
--
-- DuckDB cannot drop a primary key, so each table is rebuilt with the same columns in the same order.

DROP INDEX IF EXISTS spans_span_id;

CREATE TABLE spans_0050 (
    seq                     BIGINT NOT NULL,
    trace_id                VARCHAR NOT NULL,
    span_id                 VARCHAR NOT NULL,
    parent_span_id          VARCHAR NOT NULL,
    name                    VARCHAR NOT NULL,
    kind                    TINYINT NOT NULL,
    start_time_ns           BIGINT NOT NULL,
    end_time_ns             BIGINT NOT NULL,
    status_code             TINYINT NOT NULL,
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
    truncations             JSON NOT NULL,
    canonical               BLOB NOT NULL,
    source                  VARCHAR NOT NULL,
    batch_id                BIGINT NOT NULL,
    received_at             TIMESTAMPTZ NOT NULL,
    version_of              BIGINT
);
INSERT INTO spans_0050 SELECT * FROM spans ORDER BY seq;
DROP TABLE spans;
ALTER TABLE spans_0050 RENAME TO spans;

CREATE TABLE steps_0050 (
    seq               BIGINT NOT NULL,
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
    user_id           VARCHAR,
    span_digest       BLOB,
    normalizer_version VARCHAR,
    event_fields      VARCHAR
);
INSERT INTO steps_0050 SELECT * FROM steps ORDER BY seq;
DROP TABLE steps;
ALTER TABLE steps_0050 RENAME TO steps;

CREATE TABLE ledger_0050 (
    seq     BIGINT NOT NULL,
    digest  BLOB NOT NULL,
    chain   BLOB NOT NULL
);
INSERT INTO ledger_0050 SELECT * FROM ledger ORDER BY seq;
DROP TABLE ledger;
ALTER TABLE ledger_0050 RENAME TO ledger;

-- What the workbench adds on top of the captured steps: findings of the policy rules, investigators'
-- annotations, and probe runs with their results. Steps are referenced by their seq (the span's
-- ingest sequence), which never changes; trace_id is repeated so per-trace reads need no join.

CREATE SEQUENCE IF NOT EXISTS findings_id_seq START 1;

CREATE TABLE findings (
    id                BIGINT PRIMARY KEY DEFAULT nextval('findings_id_seq'),
    trace_id          VARCHAR NOT NULL,
    step_seq          BIGINT NOT NULL,          -- the step the finding is about (the action, for chains)
    span_id           VARCHAR NOT NULL,
    rule_id           VARCHAR NOT NULL,         -- e.g. 'destructive-action'
    severity          VARCHAR NOT NULL,         -- 'info' | 'low' | 'medium' | 'high' | 'critical'
    title             VARCHAR NOT NULL,         -- one line for lists
    explanation       VARCHAR NOT NULL,         -- why this matters, in words
    evidence_field    VARCHAR,                  -- the step field quoted: 'tool_arguments', 'reasoning_text', ...
    evidence_start    INTEGER,                  -- character range [start, end) in that field's text
    evidence_end      INTEGER,
    evidence_excerpt  VARCHAR,                  -- the quoted text (possibly with a little context)
    taint_chain       JSON NOT NULL,            -- list of step seqs from source to action; [] if none
    details           JSON NOT NULL,            -- rule-specific extras
    created_at        TIMESTAMPTZ NOT NULL
);

CREATE SEQUENCE IF NOT EXISTS annotations_id_seq START 1;

CREATE TABLE annotations (
    id          BIGINT PRIMARY KEY DEFAULT nextval('annotations_id_seq'),
    trace_id    VARCHAR NOT NULL,
    step_seq    BIGINT,                          -- NULL: a note on the whole trace
    author      VARCHAR NOT NULL,
    text        VARCHAR NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE SEQUENCE IF NOT EXISTS probe_runs_id_seq START 1;

CREATE TABLE probe_runs (
    id              BIGINT PRIMARY KEY DEFAULT nextval('probe_runs_id_seq'),
    trace_id        VARCHAR NOT NULL,
    step_seq        BIGINT NOT NULL,
    analyses        JSON NOT NULL,               -- list of analysis names asked for
    status          VARCHAR NOT NULL,            -- 'queued' | 'running' | 'done' | 'failed'
    progress        DOUBLE NOT NULL,             -- 0..1
    error           VARCHAR,
    params          JSON NOT NULL,               -- e.g. the counterfactual scratchpad for patching
    provenance      JSON NOT NULL,               -- model id, weights hash, TransformerLens version/mode, dtype
    created_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ
);

CREATE TABLE probe_results (
    run_id      BIGINT NOT NULL,
    analysis    VARCHAR NOT NULL,                -- 'logit_lens' | 'attention' | 'probe:<name>' | 'patching' ...
    summary     JSON NOT NULL,                   -- small, shown in lists and exports
    data        JSON NOT NULL,                   -- the full result (matrices as nested lists, token spans)
    PRIMARY KEY (run_id, analysis)
);

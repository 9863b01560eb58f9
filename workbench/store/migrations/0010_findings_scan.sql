-- The findings scanner's watermark: every step with seq <= scanned_seq belongs to a trace whose findings
-- were computed after that step was committed, under the rule configuration whose digest is recorded.
-- A scanner that starts (or a direct `workbench ingest`) catches up from here; a changed digest means
-- the rules changed, so every trace is rescanned.

CREATE TABLE findings_scan (
    id            INTEGER PRIMARY KEY,          -- always 1: one watermark per database
    scanned_seq   BIGINT NOT NULL,
    rules_digest  VARCHAR NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

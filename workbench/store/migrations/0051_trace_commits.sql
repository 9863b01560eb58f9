-- Where each trace's steps lie, so the trace list reads a small table instead of every step (issue #20).
--
-- Why: the Traces page, `GET /api/v1/traces` and `workbench traces` listed traces by a GROUP BY over
-- every step, linear in the store (about 1.2 s at 10M spans). Steps have no index (migration 0050), but
-- they are appended in seq order, so DuckDB's zone maps on seq skip every row group outside a seq range.
-- This table says, per trace and group commit, the trace's earliest step start and the seq range its
-- steps took: the list takes its page of traces newest first from here, then sums only those traces'
-- steps, reading only those seq ranges (workbench/store/explore_walk.py).
--
-- Derived, never evidence: the writer appends one row per trace of each commit in the commit's
-- transaction (workbench/store/writer.py), `workbench renormalize` rebuilds it, and nothing sealed,
-- exported or verified reads it. Append-only: a trace's start is the min over its rows.

CREATE TABLE trace_commits (
    trace_id       VARCHAR NOT NULL,
    start_time_ns  BIGINT NOT NULL,   -- min(start_time_ns) of this trace's steps in the commit
    first_seq      BIGINT NOT NULL,   -- min(seq) of those steps
    last_seq       BIGINT NOT NULL    -- max(seq) of those steps
);

-- Steps stored before this migration: one row per trace and DuckDB row group of seqs (122,880), so no
-- range spans more than two row groups. Kept equal to workbench/store/trace_commits.py REBUILD_SQL.
INSERT INTO trace_commits
SELECT trace_id, min(start_time_ns), min(seq), max(seq) FROM steps
GROUP BY trace_id, seq // 122880 ORDER BY min(seq);

"""Reads the list pages make for many traces at once equal the per-trace reads they replace.

The reference is `queries.trace_steps(limit=...)`, one scan per trace, on the same store: traces whose
steps were written in several group commits (interleaved with other traces in seq order), redelivered
spans, conflicting versions and GenAI events joined late (the store `test_explore_walk` builds).
"""

from __future__ import annotations

from tests import test_ui
from tests.test_explore_walk import settings  # noqa: F401 - the module's store, reused as a fixture
from workbench.export.brief import task_of, task_of_inputs
from workbench.settings import Settings
from workbench.store import explore, queries
from workbench.store.connection import Store


def _all_traces(store: Store) -> list[str]:
    return [r[0] for r in store.cursor().execute("SELECT DISTINCT trace_id FROM steps ORDER BY 1").fetchall()]


def test_first_steps_equal_one_scan_per_trace(settings: Settings) -> None:  # noqa: F811
    with Store(settings.db_path, read_only=True) as store:
        traces = _all_traces(store)
        split = (
            store.cursor()
            .execute(
                "SELECT count(*) FROM (SELECT trace_id FROM trace_commits GROUP BY 1 HAVING count(*) > 1)"
            )
            .fetchone()
        )
        assert split and split[0] > 0  # some traces' steps lie in more than one seq range
        for limit in (1, 3, 12, 1000):
            got = queries.first_inputs_by_trace(store, [*traces, "0" * 32], limit)
            assert got.pop("0" * 32) == []  # an unknown trace reads nothing and is no error
            want = {
                t: [(s.step.kind, s.step.input_text) for s in queries.trace_steps(store, t, limit=limit)]
                for t in traces
            }
            assert got == want, limit
            assert any(got.values())
        assert queries.first_inputs_by_trace(store, [], 12) == {}
        assert queries.first_inputs_by_trace(store, traces[:3], 0) == {t: [] for t in traces[:3]}


def test_steps_of_several_traces_equal_one_scan_per_trace(settings: Settings) -> None:  # noqa: F811
    """What the findings scanner reads: every step of each trace, through `trace_commits` ranges."""
    with Store(settings.db_path, read_only=True) as store:
        traces = _all_traces(store)
        got = queries.steps_by_trace(store, [*traces, "0" * 32])
        assert got.pop("0" * 32) == []
        assert got == {t: queries.trace_steps(store, t) for t in traces}
        assert (
            sum(len(v) for v in got.values())
            == store.cursor().execute("SELECT count(*) FROM steps").fetchone()[0]
        )
        for k in range(0, len(traces), 3):  # a chunk, as the scanner asks
            part = traces[k : k + 3]
            assert queries.steps_by_trace(store, part) == {t: got[t] for t in part}
        assert queries.steps_by_trace(store, []) == {}


def test_versions_of_several_traces_equal_a_query_per_trace(settings: Settings) -> None:  # noqa: F811
    """The span-rewritten rule's input, read for a chunk at once, against the one-trace query as it was."""
    one_trace = (
        "SELECT v.seq, v.span_id, v.version_of, lo.digest, lv.digest FROM spans v"
        " JOIN ledger lv ON lv.seq = v.seq JOIN ledger lo ON lo.seq = v.version_of"
        " WHERE v.trace_id = ? AND v.version_of IS NOT NULL ORDER BY v.seq"
    )
    with Store(settings.db_path, read_only=True) as store:
        traces = _all_traces(store)
        got = queries.span_versions_by_trace(store, [*traces, "0" * 32])
        assert got.pop("0" * 32) == []
        want = {
            t: [
                (int(a), str(b), int(c), bytes(d), bytes(e))
                for a, b, c, d, e in store.cursor().execute(one_trace, [t]).fetchall()
            ]
            for t in traces
        }
        assert got == want
        assert any(got.values())  # the store holds rewritten versions
        assert all(queries.span_versions(store, t) == want[t] for t in traces)


# test_ui's store of the five sample incidents, whose traces have tasks.
samples_store = test_ui.samples_store


def test_the_list_finds_the_task_the_brief_finds(samples_store: Store) -> None:
    traces = _all_traces(samples_store)
    inputs = queries.first_inputs_by_trace(samples_store, traces, 12)
    tasks = {t: task_of_inputs(inputs[t]) for t in traces}
    assert tasks == {
        t: task_of([s.step for s in queries.trace_steps(samples_store, t, limit=12)]) for t in traces
    }
    assert sum(task is not None for task in tasks.values()) >= 4


def test_step_counts_of_several_traces_equal_each_count(samples_store: Store) -> None:
    traces = [*_all_traces(samples_store), "f" * 32]
    counts = explore.step_counts(samples_store, traces)
    assert counts == {t: explore.step_count(samples_store, t) for t in traces}
    assert counts["f" * 32] == 0 and sum(counts.values()) > 0
    assert explore.step_counts(samples_store, []) == {}

"""Leases in the lake's catalog (real PostgreSQL): two nodes contending for one trace, never both win."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from workbench.errors import WorkbenchError
from workbench.store.lake_lease import LeaseTable, scan_lease_name


@pytest.fixture
def two_nodes(postgres_dsn: str) -> Iterator[tuple[LeaseTable, LeaseTable]]:
    a, b = LeaseTable(postgres_dsn, "node-a"), LeaseTable(postgres_dsn, "node-b")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_a_held_lease_is_refused_to_the_other_node_until_released(
    two_nodes: tuple[LeaseTable, LeaseTable],
) -> None:
    a, b = two_nodes
    name = scan_lease_name("4bf92f3577b34da6a3ce929d0e0e4736")
    lease = a.acquire(name)
    assert lease is not None and lease.holder == "node-a"
    assert b.acquire(name) is None
    assert a.acquire(name) is None  # not re-entrant: a second scan on the same node waits too
    assert b.holder_of(name) == "node-a"
    a.release(lease)
    assert a.holder_of(name) is None
    taken = b.acquire(name)
    assert taken is not None and taken.holder == "node-b"


def test_an_expired_lease_is_taken_over_and_the_old_holder_cannot_renew_it(
    two_nodes: tuple[LeaseTable, LeaseTable],
) -> None:
    a, b = two_nodes
    stale = a.acquire("scan:t1", ttl_s=0)  # a node that died: its time has run out at once
    assert stale is not None
    assert b.holder_of("scan:t1") is None
    fresh = b.acquire("scan:t1", ttl_s=60)
    assert fresh is not None
    assert a.renew(stale) is None  # the old holder learns it lost the lease and must stop
    a.release(stale)  # and its late release does not free the new holder's lease
    assert a.holder_of("scan:t1") == "node-b"
    renewed = b.renew(fresh, ttl_s=120)
    assert renewed is not None and renewed.expires_at > fresh.expires_at


def test_racing_nodes_never_both_win(postgres_dsn: str) -> None:
    tables = [LeaseTable(postgres_dsn, f"node-{i % 2}-{i}") for i in range(6)]
    winners: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(tables))
    names = [scan_lease_name(f"trace-{n}") for n in range(15)]

    def contend(table: LeaseTable) -> None:
        barrier.wait()
        try:
            for name in names:
                if table.acquire(name) is not None:
                    winners.setdefault(name, []).append(table.holder)
        except BaseException as exc:  # a lost race is a None, never an error
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(t,)) for t in tables]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        assert sorted(winners) == sorted(names)
        assert {name: len(w) for name, w in winners.items()} == {name: 1 for name in names}
    finally:
        for table in tables:
            table.close()


def test_hostile_names_are_stored_exactly(two_nodes: tuple[LeaseTable, LeaseTable]) -> None:
    a, b = two_nodes
    name = "scan:'); DROP TABLE workbench_leases; --\\ \u202e"
    lease = a.acquire(name)
    assert lease is not None
    assert b.holder_of(name) == "node-a"
    assert b.acquire(name) is None
    with pytest.raises(ValueError, match="NUL"):
        a.acquire("scan:\x00")


def test_held_releases_on_the_way_out(two_nodes: tuple[LeaseTable, LeaseTable]) -> None:
    a, b = two_nodes
    with a.held("probe:7") as lease:
        assert lease is not None
        with b.held("probe:7") as other:
            assert other is None
    assert b.acquire("probe:7") is not None


def test_unreachable_catalog_is_a_clear_error() -> None:
    with pytest.raises(WorkbenchError, match="catalog for leases"):
        LeaseTable("dbname=nope host=127.0.0.1 port=1 user=postgres connect_timeout=2", "node-a")

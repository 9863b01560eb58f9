"""Selecting what goes into a bundle: the WHERE clause over spans, rows as dicts, JSON columns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from workbench.export.bundle_options import ExportOptions


def _where_sql(options: ExportOptions, trace_ids: Sequence[str]) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if trace_ids:
        clauses.append(f"trace_id IN ({', '.join('?' for _ in trace_ids)})")
        params += list(trace_ids)
    if options.since_ns is not None:
        clauses.append("start_time_ns >= ?")
        params.append(options.since_ns)
    if options.until_ns is not None:
        clauses.append("start_time_ns < ?")
        params.append(options.until_ns)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


def _rows(cur: Any, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    result = cur.execute(sql, list(params))
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _loads_json_columns(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> None:
    for row in rows:
        for c in columns:
            if isinstance(row.get(c), str):
                row[c] = orjson.loads(row[c])

"""Hypothesis over the decoder and normalizer in-process: decode -> records -> steps -> columns.

Every input must give either stored spans or a clear refusal (whole request, or per span in
`errors`), never an exception; and a good span beside bad ones is always kept. Bounded to a few
hundred examples per property so the whole file runs in well under a minute; `make fuzz` is the long
run against a real server.
"""

from __future__ import annotations

import base64
import json
import zlib

from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collectors.checks import check_span
from collectors.workers import Prepared, Refused, prepare_body
from tests.otlp_payloads import JSON, PROTOBUF
from workbench.settings import Settings

LIMITS = Settings.from_env()
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_u64 = st.integers(0, 2**64 - 1)
_i32 = st.integers(-(2**31), 2**31 - 1)
_text = st.text(max_size=20)


def _any_values() -> st.SearchStrategy[AnyValue]:
    scalars = st.one_of(
        _text.map(lambda s: AnyValue(string_value=s)),
        st.integers(-(2**63), 2**63 - 1).map(lambda i: AnyValue(int_value=i)),
        st.floats(allow_nan=True).map(lambda f: AnyValue(double_value=f)),
        st.booleans().map(lambda b: AnyValue(bool_value=b)),
        st.binary(max_size=8).map(lambda b: AnyValue(bytes_value=b)),
    )

    def nest(children: st.SearchStrategy[AnyValue]) -> st.SearchStrategy[AnyValue]:
        def array(values: list[AnyValue]) -> AnyValue:
            v = AnyValue()
            v.array_value.values.extend(values)
            return v

        def kvlist(pairs: list[tuple[str, AnyValue]]) -> AnyValue:
            v = AnyValue()
            v.kvlist_value.values.extend(KeyValue(key=k, value=x) for k, x in pairs)
            return v

        return st.one_of(
            st.lists(children, max_size=3).map(array),
            st.lists(st.tuples(_text, children), max_size=3).map(kvlist),
        )

    return st.recursive(scalars, nest, max_leaves=12)


@st.composite
def _spans(draw: st.DrawFn) -> Span:
    span = Span(
        trace_id=draw(st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20))),
        span_id=draw(st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=10))),
        parent_span_id=draw(st.sampled_from([b"", b"\x01" * 8, b"\x02" * 3])),
        name=draw(_text),
        start_time_unix_nano=draw(st.one_of(st.integers(0, 2**63 - 1), _u64)),
        end_time_unix_nano=draw(_u64),
        flags=draw(st.integers(0, 2**32 - 1)),
        dropped_attributes_count=draw(st.integers(0, 2**32 - 1)),
    )
    span.kind = draw(st.one_of(st.integers(0, 5), _i32))  # type: ignore[assignment]
    span.status.code = draw(st.one_of(st.integers(0, 2), _i32))  # type: ignore[assignment]
    span.status.message = draw(_text)
    span.attributes.extend(
        KeyValue(key=k, value=v) for k, v in draw(st.lists(st.tuples(_text, _any_values()), max_size=4))
    )
    for _ in range(draw(st.integers(0, 2))):
        event = span.events.add(name=draw(_text), time_unix_nano=draw(_u64))
        event.attributes.extend(
            KeyValue(key=k, value=v) for k, v in draw(st.lists(st.tuples(_text, _any_values()), max_size=2))
        )
    return span


def _good_span(n: int) -> Span:
    return Span(
        trace_id=bytes([1 + n % 250]) * 16,
        span_id=bytes([1 + n % 250]) + b"\x09" * 7,
        name=f"good {n}",
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_000_000_100,
    )


@st.composite
def _requests(draw: st.DrawFn) -> tuple[ExportTraceServiceRequest, Span]:
    """A request holding random spans and, at a random place, one good span."""
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    ss.scope.name = draw(_text)
    spans = draw(st.lists(_spans(), max_size=4))
    good = _good_span(draw(st.integers(0, 10_000)))
    spans.insert(draw(st.integers(0, len(spans))), good)
    ss.spans.extend(spans)
    return req, good


def _prepare(body: bytes, content_type: str, encoding: str | None = None) -> Prepared | Refused:
    out = prepare_body(body, content_type, encoding, LIMITS)  # must not raise, whatever the body
    assert isinstance(out, Prepared | Refused)
    if isinstance(out, Refused):
        assert 400 <= out.status < 500 and out.message, out
        out.message.encode("utf-8")  # travels in a protobuf string: never a lone surrogate
    else:
        for error in out.errors:
            assert error and error.encode("utf-8")
    return out


def _stored(out: Prepared | Refused) -> set[tuple[str, str]]:
    if isinstance(out, Refused) or out.batch is None:
        return set()
    spans = out.batch.spans
    return set(zip(spans["trace_id"].to_pylist(), spans["span_id"].to_pylist(), strict=True))


@FUZZ
@given(_requests())
def test_every_span_is_stored_or_refused_with_a_reason_and_good_ones_are_kept(
    case: tuple[ExportTraceServiceRequest, Span],
) -> None:
    req, good = case
    spans = req.resource_spans[0].scope_spans[0].spans
    out = _prepare(req.SerializeToString(), PROTOBUF)
    assert isinstance(out, Prepared), out
    n_stored = len(out.batch) if out.batch is not None else 0
    assert n_stored + len(out.errors) == len(spans)
    assert (good.trace_id.hex(), good.span_id.hex()) in _stored(out)
    # Every span that passes the checks and nests no deeper than the limit is stored.
    assert n_stored >= sum(1 for s in spans if check_span(s) is None) - len(
        [e for e in out.errors if "nested more than" in e]
    )
    # The same request as OTLP/JSON keeps the good span too.
    doc = json_format.MessageToDict(req)
    for span in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                span[key] = base64.b64decode(span[key]).hex()
    out_json = _prepare(json.dumps(doc).encode(), JSON)
    assert (good.trace_id.hex(), good.span_id.hex()) in _stored(out_json)


@FUZZ
@given(_requests(), st.data())
def test_mutated_protobuf_never_raises(
    case: tuple[ExportTraceServiceRequest, Span], data: st.DataObject
) -> None:
    body = bytearray(case[0].SerializeToString())
    for _ in range(data.draw(st.integers(1, 4))):
        if not body:
            break
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    _prepare(bytes(body[:cut] if data.draw(st.booleans()) else body), PROTOBUF)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([PROTOBUF, JSON]), st.sampled_from([None, "gzip", "deflate"]))
def test_random_bytes_never_raise(body: bytes, content_type: str, encoding: str | None) -> None:
    _prepare(body, content_type, encoding)


_JSON_JUNK = [
    '"\\ud800"',
    '{"\\udfff": 1}',
    "[" * 2000 + "]" * 2000,
    "1e999",
    "-0",
    '"\\u0000"',
    "{}",
    "[]",
    "null",
    '"x"',
]


@FUZZ
@given(_requests(), st.data())
def test_mutated_json_never_raises_and_keeps_untouched_good_spans(
    case: tuple[ExportTraceServiceRequest, Span], data: st.DataObject
) -> None:
    req, good = case
    doc = json_format.MessageToDict(req)
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    good_index = next(i for i, s in enumerate(spans) if s.get("name") == good.name)
    for i, span in enumerate(spans):
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                span[key] = base64.b64decode(span[key]).hex()
        if i != good_index and data.draw(st.booleans()):
            span[
                data.draw(st.sampled_from(["name", "kind", "attributes", "\ud800", "startTimeUnixNano"]))
            ] = "@@"
    text = json.dumps(doc)
    for _ in range(data.draw(st.integers(0, 3))):
        junk = data.draw(st.sampled_from(_JSON_JUNK))
        text = text.replace('"@@"', junk, 1)
    out = _prepare(text.encode("utf-8", "surrogatepass"), JSON)
    # Junk only ever lands in other spans: the request is read and the good span kept.
    assert isinstance(out, Prepared), out
    assert (good.trace_id.hex(), good.span_id.hex()) in _stored(out)
    # gzip of the same body goes the same way
    gz = zlib.compressobj(wbits=31)
    _prepare(gz.compress(text.encode("utf-8", "surrogatepass")) + gz.flush(), JSON, "gzip")

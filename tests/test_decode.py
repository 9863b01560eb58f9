"""Pure decoding: OTLP/JSON and protobuf bodies, compression, per-span validation and truncation."""

from __future__ import annotations

import gzip
import json
import random
import zlib

import pytest
from google.protobuf import json_format, wrappers_pb2
from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from collectors import decode
from tests.sdk_spans import agent_run_request
from workbench.errors import BadInput


def _as_otlp_json(req: object) -> dict:
    doc = json_format.MessageToDict(req)  # type: ignore[arg-type]
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = __import__("base64").b64decode(span[key]).hex()
    return doc


def test_protobuf_and_json_decode_to_the_same_records() -> None:
    req = agent_run_request(2)
    from_pb_req, _ = decode.parse_request(req.SerializeToString(), "application/x-protobuf")
    from_pb = decode.to_records(from_pb_req, 1000)
    doc = _as_otlp_json(req)
    doc["resourceSpans"][0]["unknownFutureField"] = {"x": 1}  # receivers must ignore unknown fields
    parsed, left_out = decode.parse_request(json.dumps(doc).encode(), "application/json")
    assert left_out == []
    from_json = decode.to_records(parsed, 1000)
    assert [r.canonical for r in from_pb.records] == [r.canonical for r in from_json.records]
    assert len(from_pb.records) == 5 and not from_pb.errors
    tool = next(r for r in from_pb.records if r.name == "execute_tool run_sql_1")
    assert tool.attributes["gen_ai.tool.call.arguments"] == '{"query": "SELECT 1"}'
    assert tool.events[0].name == "note" and tool.events[0].attributes == {"i": 1}
    assert len(tool.trace_id) == 32 and len(tool.span_id) == 16 and len(tool.parent_span_id) == 16


def test_canonical_bytes_hold_one_span_and_redecode_identically() -> None:
    records = decode.to_records(agent_run_request(1), 1000).records
    for r in records:
        again = decode.record_from_canonical(r.canonical, 1000)
        assert again == r


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw", None])
def test_compressed_bodies(encoding: str | None) -> None:
    body = agent_run_request(1).SerializeToString()
    if encoding == "gzip":
        packed = gzip.compress(body)
    elif encoding == "deflate":
        packed = zlib.compress(body)
    elif encoding == "deflate-raw":
        c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        packed = c.compress(body) + c.flush()
        encoding = "deflate"
    else:
        packed = body
    assert decode.decompress(packed, encoding, 1 << 20) == body


def test_decompression_is_capped() -> None:
    bomb = gzip.compress(bytes(50_000_000))
    with pytest.raises(BadInput, match="exceeds the limit of 1000000 bytes") as info:
        decode.decompress(bomb, "gzip", 1_000_000)
    assert info.value.status == 413


def test_truncated_gzip_and_unknown_encoding() -> None:
    packed = gzip.compress(b"x" * 10_000)
    with pytest.raises(BadInput, match="truncated|not valid gzip"):
        decode.decompress(packed[: len(packed) // 2], "gzip", 1 << 20)
    with pytest.raises(BadInput, match="unsupported Content-Encoding") as info:
        decode.decompress(packed, "br", 1 << 20)
    assert info.value.status == 415


def test_bad_bodies_say_what_and_where() -> None:
    with pytest.raises(BadInput, match="not valid UTF-8 at byte 18"):
        decode.parse_request(b'{"resourceSpans": \xff]}', "application/json")
    with pytest.raises(BadInput, match="line 1 column 19"):
        decode.parse_request(b'{"resourceSpans": ]}', "application/json")
    with pytest.raises(BadInput, match="malformed OTLP protobuf"):
        decode.parse_request(b"\x0a\xff\xff\xff", "application/x-protobuf")
    with pytest.raises(BadInput, match="unsupported Content-Type") as info:
        decode.parse_request(b"{}", "text/plain")
    assert info.value.status == 415


def test_invalid_spans_are_rejected_one_by_one() -> None:
    req = agent_run_request(1)
    spans = req.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = b"\x01" * 5
    spans[1].span_id = b""
    result = decode.to_records(req, 1000)
    assert len(result.records) == len(spans) - 2
    assert result.errors[0].startswith("resource_spans[0].scope_spans[0].spans[0]")
    assert "trace_id must be 16 non-zero bytes, got 5" in result.errors[0]
    assert "span_id must be 8 non-zero bytes, got 0" in result.errors[1]


def test_long_values_are_truncated_with_a_marker_and_recorded() -> None:
    req = agent_run_request(1)
    span = req.resource_spans[0].scope_spans[0].spans[0]
    kv = span.attributes.add(key="big")
    kv.value.string_value = "a" * 5000
    record = decode.to_records(req, 100).records[0]
    assert record.attributes["big"].startswith("a" * 100 + "…[truncated: 5000 chars, kept 100]")
    assert any(t.location == "attributes.big" and t.original_length == 5000 for t in record.truncations)
    # the raw bytes keep the whole value
    assert b"a" * 5000 in record.canonical


def _message_built_canonical(rs: ResourceSpans, ss: ScopeSpans, span: Span) -> bytes:
    """The definition of canonical bytes, spelled with messages: what the framed bytes must equal."""
    one = ResourceSpans(schema_url=rs.schema_url)
    one.resource.CopyFrom(rs.resource)
    scope = one.scope_spans.add(schema_url=ss.schema_url)
    scope.scope.CopyFrom(ss.scope)
    scope.spans.append(span)
    return one.SerializeToString(deterministic=True)


def _with_unknown_field(message: Message) -> None:
    """Append field 99 (varint 1), unknown to OTLP: a newer sender's field must be kept as sent."""
    message.MergeFromString(b"\x98\x06\x01")


def _varied_request() -> ExportTraceServiceRequest:
    rng = random.Random(5)
    req = ExportTraceServiceRequest()
    for r_i in range(4):
        rs = req.resource_spans.add(schema_url="https://opentelemetry.io/schemas/1.30.0" if r_i % 2 else "")
        if r_i >= 2:
            rs.resource.attributes.add(key="service.name").value.string_value = f"svc-{r_i}"
        if r_i == 3:
            rs.resource.dropped_attributes_count = 2
            _with_unknown_field(rs)  # dropped from canonical bytes, as the message-built form drops it
        for s_i in range(3):
            ss = rs.scope_spans.add(schema_url="s" * (s_i * 100))
            if s_i:
                ss.scope.name, ss.scope.version = f"scope-{s_i}", "1.0"
            if s_i == 2:
                ss.scope.attributes.add(key="k").value.int_value = 7
            for p_i in range(6):
                span = ss.spans.add(
                    trace_id=rng.randbytes(15) + b"\x01",
                    span_id=rng.randbytes(7) + b"\x01",
                    name="s" * rng.choice([0, 1, 127, 128, 300]),
                    start_time_unix_nano=rng.getrandbits(63),
                )
                # Sizes around every varint boundary of the two length prefixes (1, 2 and 3 bytes).
                size = [0, 100, 16_250, 16_400, 2_097_000, 2_098_000][p_i]
                span.attributes.add(key="blob").value.string_value = "x" * size
                if p_i == 1:
                    event = span.events.add(name="e", time_unix_nano=5)
                    event.attributes.add(key="a").value.bool_value = True
                    span.links.add(trace_id=b"\x02" * 16, span_id=b"\x03" * 8)
                if p_i == 2:
                    _with_unknown_field(span)
    return req


def test_framed_canonical_bytes_equal_the_message_built_ones() -> None:
    req = _varied_request()
    records = decode.to_records(req, 1 << 22).records
    expected = [_message_built_canonical(rs, ss, span) for _, _, rs, ss, span, _ in decode.iter_spans(req)]
    assert len(records) == len(expected) == 72
    for record, want in zip(records, expected, strict=True):
        assert record.canonical == want
    bench = ExportTraceServiceRequest.FromString(agent_run_request(2).SerializeToString())
    for _, _, rs, ss, span, _ in decode.iter_spans(bench):
        assert decode.canonical_bytes(rs, ss, span) == _message_built_canonical(rs, ss, span)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 255, 16_383, 16_384, 2**21 - 1, 2**21, 2**28, 2**35 + 3])
def test_varint_is_protobufs_own(n: int) -> None:
    # UInt64Value serializes as its tag (0x08) and then protobuf's own varint of n (nothing for 0).
    encoded = wrappers_pb2.UInt64Value(value=n).SerializeToString()
    assert decode._varint(n) == (encoded[1:] if n else b"\x00")


def test_one_bad_json_span_costs_only_itself() -> None:
    """OTLP/JSON is read span by span: a bad id or field rejects that span, its neighbours are kept."""
    doc = _as_otlp_json(agent_run_request(2))
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["traceId"] = "zz"
    spans[1]["startTimeUnixNano"] = "not a number"
    spans[2]["links"] = [{"traceId": spans[3]["traceId"], "spanId": "xyz"}]
    req, left_out = decode.parse_request(json.dumps(doc).encode(), "application/json")
    assert len(left_out) == 3
    assert left_out[0] == "resourceSpans[0].scopeSpans[0].spans[0].traceId: 'zz' is not a hex id"
    assert left_out[1].startswith("resourceSpans[0].scopeSpans[0].spans[1] (")
    assert "invalid OTLP/JSON" in left_out[1]
    assert left_out[2] == "resourceSpans[0].scopeSpans[0].spans[2].links[0].spanId: 'xyz' is not a hex id"
    kept = decode.to_records(req, 1000).records
    assert [r.name for r in kept] == [s["name"] for s in spans[3:]]
    assert spans[3]["traceId"] == kept[0].trace_id  # the caller's document is left as it was


def test_a_bad_resource_loses_its_group_and_names_it() -> None:
    doc = _as_otlp_json(agent_run_request(1))
    good = json.loads(json.dumps(doc["resourceSpans"][0]))
    doc["resourceSpans"][0]["resource"] = {"attributes": "not a list"}
    doc["resourceSpans"].append(good)
    req, left_out = decode.parse_request(json.dumps(doc).encode(), "application/json")
    assert len(left_out) == 3 and all(e.startswith("resourceSpans[0]: invalid OTLP/JSON") for e in left_out)
    assert len(decode.to_records(req, 1000).records) == 3

"""The shared secret / personal-data detector: what findings flag and what exports mask."""

from __future__ import annotations

import pytest

from workbench.sensitive import KINDS, find_sensitive, mask

SEEDED = {
    "secret": [
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD",
        "xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx",
    ],
    "email": ["jane.doe@example.com", "ops+alerts@mail.acme-corp.co.uk"],
    "phone": ["+1 415-555-0132", "+44 20 7946 0958"],
    "card": ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"],
    "iban": ["DE89 3704 0044 0532 0130 00"],
}


@pytest.mark.parametrize("kind,value", [(k, v) for k, vs in SEEDED.items() for v in vs])
def test_each_seeded_value_is_found_whole_and_masked(kind: str, value: str) -> None:
    text = f"tool said: {value} (end)"
    found = find_sensitive(text)
    assert [(m.kind, m.text) for m in found] == [(kind, value)]
    m = found[0]
    assert text[m.start : m.end] == value
    masked = mask(text, found)
    assert value not in masked and f"[REDACTED:{kind}]" in masked


def test_keyword_assignments_mask_the_value_only() -> None:
    text = 'config:\n  password = "hunter2hunter2"\n  user = "alice"\n'
    found = find_sensitive(text)
    assert [(m.rule, m.text) for m in found] == [("detect-secrets:Secret Keyword", "hunter2hunter2")]
    assert 'password = "[REDACTED:secret]"' in mask(text, found)


def test_pem_block_is_masked_whole_not_just_its_header() -> None:
    text = (
        "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAsecretbody\n-----END RSA PRIVATE KEY-----\nok"
    )
    masked = mask(text, find_sensitive(text))
    assert "MIIEpAIBAAKCAQEAsecretbody" not in masked and masked.endswith("\nok")


@pytest.mark.parametrize(
    "benign",
    [
        "SELECT count(*) FROM users WHERE id = 4",
        "order 1234567812345678 shipped",  # 16 digits, Luhn-valid, but no card network starts with 1
        "version 10.0.0.1 of the internal host",  # private address
        "the build took 4111 seconds",
        "",
    ],
)
def test_benign_text_is_left_alone(benign: str) -> None:
    assert find_sensitive(benign) == []


def test_overlaps_resolve_to_one_match_per_character() -> None:
    text = "https://admin:p4ssw0rd-longer@db.example.com/x and alice@example.com"
    found = find_sensitive(text)
    for a, b in zip(found, found[1:], strict=False):
        assert a.end <= b.start
    assert {m.kind for m in found} >= {"secret", "email"}


def test_kinds_filter_and_unknown_kind() -> None:
    text = "mail jane.doe@example.com key AKIAIOSFODNN7EXAMPLE"
    assert [m.kind for m in find_sensitive(text, kinds=["email"])] == ["email"]
    assert set(KINDS) >= {m.kind for m in find_sensitive(text)}
    with pytest.raises(ValueError, match="unknown sensitive kinds"):
        find_sensitive(text, kinds=["dna"])

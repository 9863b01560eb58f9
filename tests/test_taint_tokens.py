"""The taint rule's identifier extraction, against the plain definition it replaced for speed.

`distinctive_tokens` tests its candidates with a C regex and `_add_known` skips lines seen before; both
must give exactly what the plain per-character definition gives, on any text (hostile, non-ASCII,
Unicode digits, URLs ending in punctuation), or the rule's findings would change with the speed-up.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.policies.builtin.injection import _TOKEN, _add_known, distinctive_tokens


def plain_tokens(text: str) -> set[str]:
    """The definition as first written: every regex match, stripped, kept by a per-character test."""
    out = set()
    for m in _TOKEN.finditer(text):
        tok = m.group(0).rstrip(".,:;")
        if len(tok) >= 6 and (any(c.isdigit() for c in tok) or any(c in tok for c in "_./@:")):
            out.add(tok)
    return out


# Characters that make tokens and break them: ASCII word parts, the marks, Unicode digits that only
# `str.isdigit` admits (superscripts, circled, Arabic-Indic), letters, whitespace and quotes.
ALPHABET = st.sampled_from(
    list("aZ09_./@:+-,;'\"<>\\ \n\t\r?=&%") + ["²", "①", "٣", "é", "ß", "\u202e", "\x00"]
)
TEXT = st.lists(
    st.one_of(ALPHABET, st.sampled_from(["https://", "http://x.y/", "db-prod-1", "a@b.io"])), max_size=80
).map("".join)


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_distinctive_tokens_equal_the_plain_definition(text: str) -> None:
    assert distinctive_tokens(text) == plain_tokens(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(TEXT, max_size=6))
def test_line_cache_gives_the_tokens_of_the_whole_texts(texts: list[str]) -> None:
    known: set[str] = set()
    seen: set[str] = set()
    expected: set[str] = set()
    for k in range(len(texts)):  # step by step, as the rule adds each step's texts, repeats included
        _add_known(known, seen, iter(texts[: k + 1]))
        expected |= set().union(*(plain_tokens(t) for t in texts[: k + 1]))
        assert known == expected


def test_examples() -> None:
    text = (
        "Visit https://audit-upload.parcelfast-support.example.net/v2/collect. then mail ops@corp.io;\n"
        "order A-1042 and db-prod-1, file /var/lib/x, plain words, x² ab²cdef, ①②③④⑤⑥"
    )
    got = distinctive_tokens(text)
    assert got == plain_tokens(text)
    assert "https://audit-upload.parcelfast-support.example.net/v2/collect" in got
    assert {"ops@corp.io", "db-prod-1", "var/lib/x", "A-1042", "ab²cdef"} <= got
    assert "plain" not in got and "words" not in got

"""Trace text stays text in the UI: the escaping helpers every page uses (pure functions)."""

from __future__ import annotations

import re

from workbench.ui import figures, render

HOSTILE = (
    "![x](beacon.png) <img src=i.png> :red[ok] :green-badge[ok] :material/check: *parcelfast* _u_ "
    "`tick` $x$ &lt; | # - 1."
)


def _unescape_md(text: str) -> str:
    # The only entities md_text writes are for leading whitespace; `&lt;` in the text must stay as it is.
    text = text.replace("&#32;", " ", 1) if text.startswith("&#32;") else text
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


def test_md_text_escapes_every_markdown_character_and_keeps_the_text() -> None:
    out = render.md_text(HOSTILE + "\n\n    indented\n# heading")
    assert _unescape_md(out.replace("\\\n", "\n")) == HOSTILE + "\n\n    indented\n# heading"
    # Every punctuation character comes escaped: none is left to start a construct.
    assert re.search(r"[!-/:-@\[-`{-~]", re.sub(r"\\.", "", out, flags=re.S)) is None
    assert "\n\n" not in out and "\n#" not in out  # no blank line, no line that starts a block
    assert render.md_text("    code").startswith("&#32;")  # never an indented code block


def test_md_text_puts_urls_and_addresses_in_code_spans_never_links() -> None:
    out = render.md_text("see ![x](http://127.0.0.1:9/b.png) www.evil.example/p mail@evil.example ok")
    assert out == (r"see \!\[x\]\(`http://127.0.0.1:9/b.png)` `www.evil.example/p` `mail@evil.example` ok")
    assert render.md_text("http://h/``x") == "```http://h/``x```"


def test_html_helpers_escape_and_keep_newlines_inside_the_block() -> None:
    block = render.text_html("<b>x</b>\n\n![i](http://h/i.png)")
    assert "\n" not in block and "<b>x" not in block and "&#10;&#10;" in block
    heading = render.step_heading(3, 9, "tool", ":green-badge[ok] <a href=x>", False)
    assert ":green-badge[ok] &lt;a href=x&gt;" in heading and heading.count("<span") == 1
    card = render.finding_heading("high", "exfil", "*parcelfast*\n\nx")
    assert "*parcelfast*&#10;&#10;x" in card and "\n" not in card


def test_tree_lines_stay_one_line_and_links_are_escaped() -> None:
    assert render.one_line("a\n\nb\tc\x1b") == "a\\n\\nb\\tc\\x1b"
    lines = [
        {
            "seq": 1,
            "position": 1,
            "label": "tool: x\n\n<img src=y>",
            "hidden_children": 0,
            "current": True,
            "error": False,
        }
    ]
    out = render.tree_html(lines, "abc&step=9")
    assert "\n\n" not in out and "<img" not in out and "x\\n\\n&lt;img src=y&gt;" in out
    assert "?trace=abc%26step%3D9&amp;step=1" in out


def test_plotly_labels_are_escaped() -> None:
    assert (
        figures.plotly_text("<a href='http://h'>ok</a> & <b>")
        == "&lt;a href='http://h'&gt;ok&lt;/a&gt; &amp; &lt;b&gt;"
    )

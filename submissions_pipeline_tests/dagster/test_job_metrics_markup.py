"""Case fields reach the Dagster UI's Markdown tables raw: they must render as the same text and
nothing else (no link, image, emphasis, HTML or extra cell); the evidence links still work."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from submissions_pipeline.assets.job_metrics import CELL_CHARS, evidence_links, markdown_table

HOSTILE = [
    "[click here](https://evil.example/phish)",
    "![pixel](https://evil.example/pixel.png)",
    "<img src=x onerror=alert(1)>",
    "<script>alert('x')</script>",
    '<a href="javascript:alert(1)">open</a>',
    "**bold** __strong__ *em* _em_ ~~gone~~ `code` ``more``",
    "pipe | splits \\| the cell",
    "line one\nline two\r\n| a | b |\n|---|---|",
    "visit https://evil.example/x or www.evil.example, mail boss@evil.example",
    "&lt;script&gt; &amp; &#106;avascript: &copy;",
    "[ref]\n\n[ref]: https://evil.example",
    "<https://evil.example> <boss@evil.example>",
    "ends with a backslash \\",
    "# heading > quote - list 1. item + more",
    "{{template}} $x$ ^sup^ :smile: [^1]",
    "x" * 200 + "<b>after the cut</b>",
]

PRESIGNED = (
    "https://evidence.s3.amazonaws.com/prod/northwind/2026-11-26/j1/attempt-1/post_confirm.png"
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20261126%2Fus-east-1%2Fs3"
    "&X-Amz-Date=20261126T020000Z&X-Amz-Expires=3600&X-Amz-Signature=0f1e2d"
)
FILE_URI = "file:///srv/var/artifacts/prod/northwind/2026-11-26/j1/attempt-1/post_confirm.png"

#: What GFM turns into a link without any Markdown around it.
AUTOLINK_TRIGGERS = re.compile(r"(?i)(?:https?|ftp|mailto):/|www\.|[\w.+-]@[\w-]")


class Cells(HTMLParser):
    """The rendered table: each cell's text, and every tag met inside a cell."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.tags: list[list[list[tuple[str, dict]]]] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "tr":
            self.rows.append([])
            self.tags.append([])
        elif tag in ("td", "th"):
            self._in_cell = True
            self.rows[-1].append("")
            self.tags[-1].append([])
        elif self._in_cell:
            self.tags[-1][-1].append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.rows[-1][-1] += data


def render(markdown: str) -> Cells:
    """The HTML a CommonMark renderer with GFM tables makes of it. Raw HTML and every link
    scheme are let through, so an escape or a check that failed would show."""
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.validateLink = lambda url: True
    cells = Cells()
    cells.feed(md.render(markdown))
    return cells


def shown(text: str) -> str:
    """What a person reads in a cell (the word joiner is invisible)."""
    return text.replace("\u2060", "")


def test_hostile_case_text_renders_as_the_same_text_and_nothing_else():
    rows = [
        {"case_id": f"CASE-{n:05d}", "complaint": text, "evidence_url": PRESIGNED}
        for n, text in enumerate(HOSTILE)
    ]
    table = markdown_table(
        rows, ["case_id", "complaint", "evidence_url"], link_column="evidence_url"
    )
    cells = render(table.value)

    assert cells.rows[0] == ["case_id", "complaint", "evidence_url"]
    assert len(cells.rows) == len(HOSTILE) + 1  # no row was added or swallowed
    for n, text in enumerate(HOSTILE, start=1):
        case_id, complaint, link = cells.rows[n]
        assert case_id == f"CASE-{n - 1:05d}"
        assert shown(complaint) == " ".join(text[:CELL_CHARS].split())
        assert cells.tags[n][1] == [], f"markup from {text!r}: {cells.tags[n][1]}"
        assert not AUTOLINK_TRIGGERS.search(complaint), f"an autolink from {text!r}"
        # The intended link survives, exactly.
        assert link == "open" and cells.tags[n][2] == [("a", {"href": PRESIGNED})]


def test_only_web_and_file_links_become_links():
    hostile_links = ["javascript:alert(1)", "data:text/html,<script>x</script>", "vbscript:x"]
    rows = [{"case_id": "C1", "url": u} for u in [FILE_URI, "https://x.example/a b(1).png"]]
    rows += [{"case_id": "C2", "url": u} for u in hostile_links]
    cells = render(markdown_table(rows, ["case_id", "url"], link_column="url").value)

    assert cells.tags[1][1] == [("a", {"href": FILE_URI})]
    assert cells.tags[2][1] == [("a", {"href": "https://x.example/a%20b%281%29.png"})]
    for n, url in enumerate(hostile_links, start=3):
        assert cells.tags[n][1] == [] and shown(cells.rows[n][1]) == url
    links = evidence_links([("C1", FILE_URI), ("C2", "javascript:alert(1)"), ("C3", PRESIGNED)])
    assert set(links) == {"evidence_C1", "evidence_C3"}


@pytest.mark.parametrize("column", ["<b>state</b>", "reason | code", "[x](https://e.example)"])
def test_column_names_are_text_too(column: str):
    cells = render(markdown_table([{column: "queued"}], [column]).value)
    assert [shown(c) for c in cells.rows[0]] == [column] and cells.tags[0] == [[]]

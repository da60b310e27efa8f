"""Metadata every submission asset reports, with keys that stay the same run after run.

Dagster plots numeric metadata across materializations only when a key appears with the same
type every time, so every state count is always present (0 when empty) and missing timings are
NaN rather than absent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from dagster import MetadataValue

from submissions_pipeline.domain import ErrorClass, SubmissionState
from submissions_pipeline.domain.stats import percentile

#: Attempt outcomes that count as failures in a fail rate (the attempt did not prove a submission).
FAILED_OUTCOMES = frozenset(
    {
        SubmissionState.RETRY_SCHEDULED,
        SubmissionState.NEEDS_RECONCILIATION,
        SubmissionState.FAILED_TERMINAL,
        SubmissionState.DEAD_LETTERED,
        SubmissionState.QUEUED,  # lease given back: the attempt did not finish
        SubmissionState.RUNNING,  # still leased after the worker returned: orphaned
    }
)

#: Failed attempts (retried or not) must stay under this share of attempts, per run and over the
#: soak window. Invalid data is not a failure: a human must fix the case, the pipeline worked.
ERROR_BUDGET = 0.02

#: Numeric keys repeated under `<oem>/...`: Dagster plots a key as one series across every
#: partition, so only per-OEM keys draw one line per OEM.
PER_OEM_SERIES = {
    "attempts": "attempts",
    "failed_attempts": "failed_attempts",
    "fail_rate": "fail_rate",
    "p50_job_s": "p50_s",
    "p95_job_s": "p95_s",
    "jobs_per_hour": "jobs_per_hour",
}

#: Largest job table rendered into metadata (the DataFrame itself holds every row).
TABLE_ROWS = 50
#: Most evidence links attached as separate url entries.
LINK_LIMIT = 25
#: Characters of a table cell shown (the asset value holds the whole text).
CELL_CHARS = 120

#: HTML's special characters become entities, Markdown's get a backslash: the text stays text.
_MARKDOWN_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&#39;",
    **{ch: "\\" + ch for ch in "\\`*_[]()!|~#{}^$"},
}
_WORD_JOINER = "\u2060"
# The last character of each match gets the joiner before it: "https:/" -> "https:<WJ>/".
_AUTOLINK_TRIGGER = re.compile(r"(?i)(?:\b(?:https?|ftp|mailto|xmpp):/|\bwww\\?\.|[\w.+-]@)")
_LINK_SCHEMES = frozenset({"http", "https", "file"})
#: Characters that would end a Markdown link target or a table cell, percent-encoded.
_URL_ESCAPES = {c: f"%{ord(c):02X}" for c in " ()<>[]|\\\"'`"}


def state_counts(states: Iterable[str | SubmissionState]) -> dict[str, int]:
    """`state_<state>` -> count, for every state (zeros included, so the keys never change)."""
    counts = {f"state_{s.value}": 0 for s in SubmissionState}
    for s in states:
        counts[f"state_{SubmissionState(s).value}"] += 1
    return counts


def fail_rate(states: Sequence[str | SubmissionState]) -> float:
    """Share of attempts that ended anywhere but proven (NaN when there were none)."""
    if not states:
        return math.nan
    failed = sum(SubmissionState(s) in FAILED_OUTCOMES for s in states)
    return failed / len(states)


def budget_failures(
    states: Sequence[str | SubmissionState], error_classes: Sequence[str | ErrorClass | None]
) -> int:
    """Attempts that count against the error budget: failed outcomes, invalid data left out."""
    invalid = ErrorClass.INVALID_DATA.value
    return sum(
        SubmissionState(s) in FAILED_OUTCOMES
        and not (isinstance(c, str | ErrorClass) and ErrorClass(c).value == invalid)
        for s, c in zip(states, error_classes, strict=True)
    )


def per_oem_series(oem: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """`<oem>/<name>` copies of the plotted numbers, so each OEM's plot is its own line."""
    return {f"{oem}/{name}": metadata[key] for key, name in PER_OEM_SERIES.items()}


def timing_metadata(seconds: Sequence[float], concurrency: int) -> dict[str, float]:
    """p50/p95/mean job seconds and jobs/hour = concurrency x 3600 / mean job seconds."""
    values = [float(s) for s in seconds if s is not None and not math.isnan(s)]
    mean = sum(values) / len(values) if values else math.nan
    p50 = percentile(values, 50)
    p95 = percentile(values, 95)
    per_hour = concurrency * 3600 / mean if values and mean > 0 else math.nan
    return {
        "p50_job_s": round(p50, 3) if p50 is not None else math.nan,
        "p95_job_s": round(p95, 3) if p95 is not None else math.nan,
        "mean_job_s": round(mean, 3) if values else math.nan,
        "jobs_per_hour": round(per_hour, 1) if values else math.nan,
    }


def markdown_text(value: Any) -> str:
    """`value` as literal text inside Markdown: no link, image, emphasis, code, HTML or table
    cell break can come out of it, whatever it holds (case fields arrive here raw)."""
    text = " ".join(str(value).split())
    text = "".join(_MARKDOWN_ESCAPES.get(ch, ch) for ch in text)
    # GFM turns bare URLs, www. names and e-mail addresses into links even when escaped; an
    # invisible word joiner inside each trigger keeps them text (the UI shows the same).
    return _AUTOLINK_TRIGGER.sub(lambda m: m.group(0)[:-1] + _WORD_JOINER + m.group(0)[-1], text)


def safe_link(url: Any) -> str | None:
    """`url` ready for a Markdown link target, or None unless it is an http(s) or file URL
    (a javascript: or data: link must never become clickable)."""
    if not isinstance(url, str) or urlsplit(url.strip()).scheme.lower() not in _LINK_SCHEMES:
        return None
    return "".join(_URL_ESCAPES.get(ch, ch) for ch in url.strip())


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return markdown_text(str(value)[:CELL_CHARS])


def markdown_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    link_column: str | None = None,
    limit: int = TABLE_ROWS,
) -> MetadataValue:
    """A markdown table of the first `limit` rows; `link_column` values become links. Every
    other cell is literal text (see `markdown_text`)."""
    if not rows:
        return MetadataValue.md("_none_")
    head = "| " + " | ".join(map(markdown_text, columns)) + " |\n|" + "---|" * len(columns)
    lines = [head]
    for row in rows[:limit]:
        cells = []
        for c in columns:
            v = row.get(c)
            link = safe_link(v) if c == link_column and v else None
            cells.append(f"[open]({link})" if link else _cell(v))
        lines.append("| " + " | ".join(cells) + " |")
    more = f"\n\n_{len(rows) - limit} more rows in the asset value_" if len(rows) > limit else ""
    return MetadataValue.md("\n".join(lines) + more)


def evidence_links(
    links: Iterable[tuple[str, str | None]], limit: int = LINK_LIMIT
) -> dict[str, MetadataValue]:
    """`evidence_<label>` -> url entries, one per job (the first `limit`)."""
    out: dict[str, MetadataValue] = {}
    for label, url in links:
        if safe_link(url) and len(out) < limit:
            out[f"evidence_{label}"] = MetadataValue.url(url)
    return out


def error_class_counts(values: Iterable[str | ErrorClass | None]) -> dict[str, int]:
    """`failures_<error class>` -> count, for every class (zeros included)."""
    counts = {f"failures_{c.value}": 0 for c in ErrorClass}
    for v in values:
        if isinstance(v, str) and v:  # a DataFrame column holds NaN, not None, for "no error"
            counts[f"failures_{ErrorClass(v).value}"] += 1
    return counts


def reason_summary(values: Iterable[str | None]) -> MetadataValue:
    """Reason codes and how often each occurred, most frequent first, as text."""
    counts: dict[str, int] = {}
    for v in values:
        if isinstance(v, str) and v:  # skips NaN from DataFrame columns
            counts[v] = counts.get(v, 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return MetadataValue.text(", ".join(f"{k}: {n}" for k, n in ordered) or "none")

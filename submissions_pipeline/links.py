"""The links people are given to a job: the ops console's job page, never a file or signed URL.

A `file://` path means nothing on another machine and a presigned S3 link dies within 7 days,
while the CRM keeps what it is given for good. The console's address outlives both: it
authenticates the reader and streams (or presigns) the evidence at the moment of the click.
"""

from __future__ import annotations

from urllib.parse import quote

#: Where `submissions console` listens by default (loopback only).
DEFAULT_CONSOLE_URL = "http://127.0.0.1:8710"


def job_pages_base(console_url: str) -> str:
    """The prefix of every job page: a job's page is this plus `/<job_id>`."""
    return f"{(console_url or DEFAULT_CONSOLE_URL).rstrip('/')}/jobs"


def job_page_url(console_url: str, job_id: str, *, attempt: int | None = None) -> str:
    """The console page of a job (at one attempt's evidence when `attempt` is given)."""
    base = (console_url or DEFAULT_CONSOLE_URL).rstrip("/")
    url = f"{base}/jobs/{quote(job_id, safe='')}"
    return f"{url}#attempt-{attempt}" if attempt is not None else url

"""Scrubbing a Playwright trace archive of credentials before it is stored.

A trace's network log (its `*.network` members: one JSON `resource-snapshot` event per request,
recorded when DOM snapshots are on) belongs to the whole tracing session, not to a chunk: every
chunk's archive carries every request made since tracing started, including those made while a
chunk was paused, with each request body in a `resources/` member. Pausing the trace while
credentials are typed and submitted therefore keeps the actions out, not the login request. So
the bodies of credential-bearing requests are dropped from every archive, and every member that
is left goes through the redactor.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from submissions_pipeline.redaction import Redactor


def request_key(method: str, url: str) -> tuple[str, str]:
    """How a request is recognised in the network log: its method and URL without fragment."""
    return method.upper(), url.split("#", 1)[0]


def scrub_trace_archive(
    path: Path, redactor: Redactor, credential_requests: Collection[tuple[str, str]] = ()
) -> int:
    """Rewrite the archive at `path` without the bodies of credential-bearing requests and with
    every member redacted; return how many request bodies were dropped.

    A request bears credentials when `credential_requests` names it (see `request_key`: the
    requests made while credentials were typed and submitted) or when its body holds anything
    the redactor would mask.
    """
    with zipfile.ZipFile(path) as src:
        members = [(info, src.read(info)) for info in src.infolist()]
    blobs = {info.filename: data for info, data in members}
    dropped_files: set[str] = set()
    logs: dict[str, bytes] = {}
    for info, data in members:
        if info.filename.endswith(".network"):
            logs[info.filename] = _without_credential_bodies(
                data, redactor, set(credential_requests), blobs, dropped_files
            )
    scrubbed = path.with_suffix(".scrubbed")
    with zipfile.ZipFile(scrubbed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info, data in members:
            if info.filename in dropped_files:
                continue
            dst.writestr(info, redactor.redact_bytes(logs.get(info.filename, data)))
    scrubbed.replace(path)
    return len(dropped_files)


def _without_credential_bodies(
    log: bytes,
    redactor: Redactor,
    credential_requests: set[tuple[str, str]],
    blobs: dict[str, bytes],
    dropped_files: set[str],
) -> bytes:
    """The network log with the post data of credential-bearing requests removed; the members
    holding those bodies are added to `dropped_files`."""
    lines = log.split(b"\n")
    for i, line in enumerate(lines):
        if b'"postData"' not in line:
            continue
        try:
            event = json.loads(line)
            request = event["snapshot"]["request"]
            post = request["postData"]
        except (ValueError, KeyError, TypeError):
            continue
        if not isinstance(post, dict):
            continue
        files = _body_files(post)
        key = request_key(str(request.get("method", "")), str(request.get("url", "")))
        if (
            key in credential_requests
            or redactor.finds(json.dumps(post))
            or any(redactor.redact_bytes(blobs.get(f, b"")) != blobs.get(f, b"") for f in files)
        ):
            del request["postData"]
            dropped_files.update(files)
            lines[i] = json.dumps(event, separators=(",", ":")).encode()
    return b"\n".join(lines)


def _body_files(post: dict[str, Any]) -> list[str]:
    """The archive members holding a request body (`_file` or `_sha1`, with or without the
    folder)."""
    out = []
    for field in ("_file", "_sha1"):
        name = post.get(field)
        if isinstance(name, str) and name:
            out.append(name if "/" in name else f"resources/{name}")
    return out

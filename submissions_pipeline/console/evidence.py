"""A job's evidence as the console shows it: attempts, manifests checked now, expiry, bundles.

Everything is read through the `ArtifactStore` interface, and every key the console serves is
checked to lie under the job's own prefix in the store (the store's key rules refuse `..` and
any other segment that could leave it), so a crafted URL reaches nothing else.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from submissions_pipeline.artifacts import ArtifactNotFound, ArtifactStore, ArtifactStoreError
from submissions_pipeline.artifacts.base import InvalidArtifactKey
from submissions_pipeline.domain import FailureObject, Job
from submissions_pipeline.domain.evidence import EvidenceManifest

_ATTEMPT = re.compile(r"/attempt-(\d+)/")
MANIFEST = "manifest.json"


@dataclass
class ManifestCheck:
    """One manifest item and what its bytes hash to now."""

    name: str
    key: str
    size: int
    sha256: str
    status: str  # "ok", "changed", "expired" or "missing"


@dataclass
class AttemptEvidence:
    """What one attempt left in the store."""

    attempt: int
    keys: dict[str, str] = field(default_factory=dict)  # name -> key
    manifest: EvidenceManifest | None = None
    checks: list[ManifestCheck] = field(default_factory=list)
    failure: FailureObject | None = None
    timings: list[dict[str, Any]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    expired: bool = False

    @property
    def screenshots(self) -> list[str]:
        return sorted(n for n in self.keys if n.endswith(".png"))

    @property
    def traces(self) -> list[str]:
        """Every chunk of the attempt's trace, in order (the viewer is given them all)."""
        return sorted(
            (n for n in self.keys if n.startswith("trace") and n.endswith(".zip")),
            key=lambda n: int(re.sub(r"\D", "", n) or 0),
        )

    @property
    def video(self) -> str | None:
        return "video.webm" if "video.webm" in self.keys else None

    @property
    def dom(self) -> str | None:
        return "dom.html" if "dom.html" in self.keys else None


def job_key_prefixes(store: ArtifactStore, job: Job) -> list[str]:
    """The store prefixes that can hold the job's evidence: one per day it was worked on. New
    evidence is all under the day the job was enqueued; evidence stored by earlier versions
    sits under the day of each attempt."""
    start = job.created_at.date()
    end = max(job.updated_at, job.finished_at or job.updated_at).date() + timedelta(days=1)
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    return [store.job_prefix(job.oem, job.job_id, when=d) for d in days]


def owns_key(store: ArtifactStore, job: Job, key: str) -> bool:
    """Whether `key` is a well-formed key under one of the job's own prefixes."""
    try:
        store.check_key(key)
    except InvalidArtifactKey:
        return False
    return any(key.startswith(p) for p in job_key_prefixes(store, job))


def _json(store: ArtifactStore, key: str) -> Any:
    try:
        return json.loads(store.get_bytes(key))
    except (ArtifactStoreError, ValueError):
        return None


def attempts_of(store: ArtifactStore, job: Job, now: datetime) -> list[AttemptEvidence]:
    """Every attempt with stored evidence (or a kept manifest), newest first."""
    by_attempt: dict[int, AttemptEvidence] = {}
    for prefix in job_key_prefixes(store, job):
        for key in store.list(prefix):
            m = _ATTEMPT.search(key[len(prefix) - 1 :])
            if not m:
                continue
            n = int(m.group(1))
            name = key[len(prefix) + len(f"attempt-{n}/") :]
            by_attempt.setdefault(n, AttemptEvidence(n)).keys[name] = key
    # The store row keeps a copy of the proven attempt's manifest: it survives the files.
    if job.evidence.get("items"):
        n = int(job.evidence.get("attempt", job.attempt))
        by_attempt.setdefault(n, AttemptEvidence(n))
    for n, ev in by_attempt.items():
        doc = _json(store, ev.keys[MANIFEST]) if MANIFEST in ev.keys else None
        if doc is None and job.evidence.get("items") and int(job.evidence.get("attempt", -1)) == n:
            doc = job.evidence
        if doc is not None:
            try:
                ev.manifest = EvidenceManifest.model_validate(doc)
            except ValueError:
                ev.manifest = None
        ev.checks = _check_manifest(store, ev, now)
        ev.expired = any(c.status == "expired" for c in ev.checks)
        if "failure.json" in ev.keys:
            failure = _json(store, ev.keys["failure.json"])
            if failure:
                ev.failure = FailureObject.model_validate(failure)
        if ev.failure is None and job.failure is not None and job.failure.attempt == n:
            ev.failure = job.failure
        if "steps.json" in ev.keys:
            steps = _json(store, ev.keys["steps.json"]) or {}
            ev.timings, ev.log = steps.get("timings", []), steps.get("log", [])
    return [by_attempt[n] for n in sorted(by_attempt, reverse=True)]


def _check_manifest(
    store: ArtifactStore, ev: AttemptEvidence, now: datetime
) -> list[ManifestCheck]:
    """Hash every manifest item now; a missing file past the TTL is expired, not lost."""
    if ev.manifest is None:
        return []
    past_ttl = ev.manifest.captured_at + timedelta(days=store.ttl_days) <= now
    out = []
    for item in ev.manifest.items:
        try:
            digest = hashlib.sha256(store.get_bytes(item.key)).hexdigest()
            status = "ok" if digest == item.sha256 else "changed"
        except (ArtifactNotFound, InvalidArtifactKey):
            status = "expired" if past_ttl else "missing"
        except ArtifactStoreError:
            status = "missing"
        out.append(ManifestCheck(item.name, item.key, item.size, item.sha256, status))
    return out


def repro_bundle(
    store: ArtifactStore, job: Job, ev: AttemptEvidence, selectors_dir: Path | None
) -> bytes:
    """One zip to reproduce an attempt: the case, the OEM's selector files, the trace chunks,
    the step log, screenshots, failure and manifest, plus a `bundle.json` of SHA-256s."""
    wanted = [
        n
        for n in ev.keys
        if n in (MANIFEST, "steps.json", "failure.json", "dom.html")
        or n.endswith(".png")
        or n in ev.traces
    ]
    files: dict[str, bytes] = {"case.json": job.case().model_dump_json(indent=2).encode()}
    for name in sorted(wanted):
        try:
            files[f"attempt-{ev.attempt}/{name}"] = store.get_bytes(ev.keys[name])
        except ArtifactStoreError:
            continue
    if selectors_dir is not None and selectors_dir.is_dir():
        for path in sorted(selectors_dir.glob("*.json")):
            files[f"selectors/{path.name}"] = path.read_bytes()
    index = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(
            "bundle.json",
            json.dumps({"job_id": job.job_id, "attempt": ev.attempt, "sha256": index}, indent=2),
        )
    return buf.getvalue()


def merged_trace(store: ArtifactStore, ev: AttemptEvidence) -> bytes:
    """The attempt's trace chunks as one archive the viewer shows in one timeline.

    Each chunk's `trace.trace`/`.network`/`.stacks` members get the chunk's number as a prefix
    (the viewer loads every `*.trace` member of an archive); resources are shared by hash.
    """
    buf = io.BytesIO()
    seen: set[str] = set()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for i, name in enumerate(ev.traces, start=1):
            with zipfile.ZipFile(io.BytesIO(store.get_bytes(ev.keys[name]))) as chunk:
                for member in chunk.infolist():
                    target = member.filename
                    if "/" not in target and target.rsplit(".", 1)[-1] in (
                        "trace",
                        "network",
                        "stacks",
                    ):
                        target = f"{i}-{target}"
                    if target in seen:
                        continue
                    seen.add(target)
                    out.writestr(target, chunk.read(member))
    return buf.getvalue()

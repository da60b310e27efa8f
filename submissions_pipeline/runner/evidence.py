"""Captures the proof of one attempt (screenshots, trace, video, step log) and stores it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from playwright.async_api import BrowserContext, Page, Request

from submissions_pipeline.artifacts import ArtifactStore
from submissions_pipeline.domain import FailureObject, Job
from submissions_pipeline.domain.evidence import (
    EvidenceItem,
    EvidenceManifest,
    evidence_folder_date,
)
from submissions_pipeline.failpoints import failpoint
from submissions_pipeline.redaction import Redactor
from submissions_pipeline.runner.config import EvidenceSettings
from submissions_pipeline.runner.steps import StepTiming
from submissions_pipeline.runner.trace_archive import request_key, scrub_trace_archive

#: Names of a page's password inputs: their values are masked wherever the name shows up.
_PASSWORD_INPUT_NAMES = "els => els.map(e => e.name).filter(Boolean)"


class EvidenceRecorder:
    """Collects one attempt's files in a scratch folder, then uploads them under the job's keys."""

    def __init__(self, job: Job, settings: EvidenceSettings, secrets: list[str], rich_trace: bool):
        self.job = job
        self.settings = settings
        self.secrets = secrets
        self.rich_trace = rich_trace
        self.dir = Path(tempfile.mkdtemp(prefix=f"evidence-{job.job_id[:8]}-"))
        self.files: dict[str, Path] = {}
        #: Names of the password inputs met while logging in (masked whatever they hold).
        self.secret_fields: set[str] = set()
        self._context: BrowserContext | None = None
        self._trace_parts = 0
        self._tracing = False
        #: (method, URL) of every request made while credentials were typed and submitted.
        self._credential_requests: set[tuple[str, str]] = set()

    def redactor(self) -> Redactor:
        """A redactor for what is known now (secrets grow with each one-time code)."""
        return Redactor(self.secrets, self.secret_fields)

    # ----------------------------------------------------------------- capture
    async def start_trace(self, context: BrowserContext) -> None:
        """Trace the attempt; DOM snapshots only when rich (retries), they cost ~22 %."""
        self._context = context
        if not self.settings.trace:
            return
        await context.tracing.start(
            screenshots=self.rich_trace, snapshots=self.rich_trace, sources=False
        )
        await context.tracing.start_chunk(title=f"{self.job.oem} {self.job.case_id}")
        self._tracing = True

    @asynccontextmanager
    async def secret_section(self, *values: str) -> AsyncIterator[None]:
        """Keep the typing and the submitting of credentials out of the evidence.

        The trace is paused for the block and `values` (one-time codes) join the secrets
        redacted from everything stored. Pausing keeps the actions out but not the requests:
        the trace's network log spans every chunk (see `trace_archive`), so the requests the
        block makes are noted and their bodies dropped from every archive, and the password
        inputs on the page are noted so their fields are masked wherever they appear.
        """
        self.secrets.extend(v for v in values if v)
        context = self._context
        if context is None:
            yield
            return
        paused = self._tracing
        if paused:
            await self._stop_chunk()

        def note(request: Request) -> None:
            self._credential_requests.add(request_key(request.method, request.url))

        context.on("request", note)
        await self._note_password_fields(context)
        try:
            yield
        finally:
            context.remove_listener("request", note)
            if paused:
                await context.tracing.start_chunk()
                self._tracing = True

    async def _note_password_fields(self, context: BrowserContext) -> None:
        for page in context.pages:
            with contextlib.suppress(Exception):  # a page mid-navigation has nothing to say
                names = await page.locator("input[type=password]").evaluate_all(
                    _PASSWORD_INPUT_NAMES
                )
                self.secret_fields.update(n for n in names if isinstance(n, str))

    async def _stop_chunk(self) -> None:
        assert self._context is not None
        self._trace_parts += 1
        path = self.dir / f"trace-{self._trace_parts}.zip"
        await self._context.tracing.stop_chunk(path=str(path))
        self._tracing = False
        if path.exists() and path.stat().st_size > 0:
            # Off the event loop: a rich archive takes a moment, other contexts keep running.
            await asyncio.to_thread(
                scrub_trace_archive, path, self.redactor(), set(self._credential_requests)
            )
            self.files[path.name] = path

    async def finish_trace(self) -> None:
        """Close the last trace chunk (call before the context closes)."""
        if self._tracing and self._context is not None:
            try:
                await self._stop_chunk()
                await self._context.tracing.stop()
            except Exception:  # a crashed context loses its last chunk; the rest is kept
                self._tracing = False

    async def screenshot(self, page: Page, name: str) -> Path:
        """A full-page screenshot saved as `name`."""
        path = self.dir / name
        await page.screenshot(path=str(path), full_page=True)
        self.files[name] = path
        return path

    async def try_screenshot(self, page: Page | None, name: str) -> None:
        """Best-effort screenshot for a failure: a dead page must not hide the real error."""
        if page is None or page.is_closed():
            return
        with contextlib.suppress(Exception):
            await self.screenshot(page, name)

    async def dom_snapshot(self, page: Page | None, name: str = "dom.html") -> None:
        """The page's HTML, for adapter bugs: what the selectors met instead."""
        if page is None or page.is_closed():
            return
        try:
            html = await page.content()
        except Exception:
            return
        self.add_text(name, html)

    def add_text(self, name: str, text: str) -> None:
        """A text artifact, redacted of every known secret and secret field."""
        path = self.dir / name
        path.write_text(self.redactor().redact(text))
        self.files[name] = path

    def add_video(self, path: Path | None) -> None:
        """Keep a recorded video."""
        if path is not None and path.exists() and path.stat().st_size > 0:
            self.files["video.webm"] = path

    def add_step_log(self, timings: list[StepTiming], events: list[str]) -> None:
        """Step timings and the attempt's own log lines."""
        self.add_text(
            "steps.json",
            json.dumps({"timings": [t.model_dump() for t in timings], "log": events}, indent=2),
        )

    def add_failure(self, failure: FailureObject) -> None:
        """The failure object beside the artifacts it points to."""
        self.add_text("failure.json", failure.model_dump_json(indent=2))

    # ----------------------------------------------------------------- upload
    def upload(
        self,
        store: ArtifactStore,
        *,
        reference: str | None,
        reconciled: bool,
        timings: list[StepTiming],
        when: datetime | None = None,
    ) -> EvidenceManifest:
        """Store every file under env/oem/date/job/attempt and write the manifest last. The
        date is the day the job was enqueued, so every attempt of a job, on whatever day it
        ran, sits under one prefix; `captured_at` says when."""
        when = when or datetime.now(UTC)
        job = self.job
        folder = evidence_folder_date(job)
        manifest = EvidenceManifest(
            job_id=job.job_id,
            case_id=job.case_id,
            oem=job.oem,
            attempt=job.attempt,
            reference=reference,
            reconciled=reconciled,
            step_seconds={t.step: round(t.seconds, 3) for t in timings},
            captured_at=when,
        )
        for name, path in sorted(self.files.items()):
            key = store.artifact_key(job.oem, job.job_id, job.attempt, name, when=folder)
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            stored = store.put_file(key, path, content_type=ctype)
            failpoint("during_evidence_upload")
            manifest.items.append(
                EvidenceItem(
                    name=name,
                    key=stored.key,
                    sha256=stored.sha256,
                    size=stored.size,
                    content_type=ctype,
                )
            )
        key = store.artifact_key(job.oem, job.job_id, job.attempt, "manifest.json", when=folder)
        store.put_bytes(key, manifest.model_dump_json(indent=2).encode(), "application/json")
        return manifest

    def cleanup(self) -> None:
        """Remove the scratch folder."""
        shutil.rmtree(self.dir, ignore_errors=True)

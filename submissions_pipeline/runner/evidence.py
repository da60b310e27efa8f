"""Captures the proof of one attempt (screenshots, trace, video, step log) and stores it."""

from __future__ import annotations

import contextlib
import json
import mimetypes
import shutil
import tempfile
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from playwright.async_api import BrowserContext, Page

from submissions_pipeline.artifacts import ArtifactStore
from submissions_pipeline.credentials import redact, redact_bytes
from submissions_pipeline.domain import FailureObject, Job
from submissions_pipeline.domain.evidence import EvidenceItem, EvidenceManifest
from submissions_pipeline.failpoints import failpoint
from submissions_pipeline.runner.config import EvidenceSettings
from submissions_pipeline.runner.steps import StepTiming


class EvidenceRecorder:
    """Collects one attempt's files in a scratch folder, then uploads them under the job's keys."""

    def __init__(self, job: Job, settings: EvidenceSettings, secrets: list[str], rich_trace: bool):
        self.job = job
        self.settings = settings
        self.secrets = secrets
        self.rich_trace = rich_trace
        self.dir = Path(tempfile.mkdtemp(prefix=f"evidence-{job.job_id[:8]}-"))
        self.files: dict[str, Path] = {}
        self._context: BrowserContext | None = None
        self._trace_parts = 0
        self._tracing = False

    # ----------------------------------------------------------------- capture
    async def start_trace(self, context: BrowserContext) -> None:
        """Trace the attempt; DOM snapshots only when rich (retries), they cost ~22 %."""
        if not self.settings.trace:
            return
        self._context = context
        await context.tracing.start(
            screenshots=self.rich_trace, snapshots=self.rich_trace, sources=False
        )
        await context.tracing.start_chunk(title=f"{self.job.oem} {self.job.case_id}")
        self._tracing = True

    @asynccontextmanager
    async def secret_section(self, *values: str) -> AsyncIterator[None]:
        """Pause the trace while credentials are typed, and redact `values` (one-time codes)
        with the known secrets from everything stored. Network entries can land in the next
        trace chunk, so every trace archive is also scrubbed when its chunk closes."""
        self.secrets.extend(v for v in values if v)
        if not self._tracing or self._context is None:
            yield
            return
        await self._stop_chunk()
        try:
            yield
        finally:
            await self._context.tracing.start_chunk()
            self._tracing = True

    async def _stop_chunk(self) -> None:
        assert self._context is not None
        self._trace_parts += 1
        path = self.dir / f"trace-{self._trace_parts}.zip"
        await self._context.tracing.stop_chunk(path=str(path))
        self._tracing = False
        if path.exists() and path.stat().st_size > 0:
            self._scrub_archive(path)
            self.files[path.name] = path

    def _scrub_archive(self, path: Path) -> None:
        """Rewrite a trace archive with every secret redacted from every member."""
        scrubbed = path.with_suffix(".scrubbed")
        with (
            zipfile.ZipFile(path) as src,
            zipfile.ZipFile(scrubbed, "w", zipfile.ZIP_DEFLATED) as dst,
        ):
            for info in src.infolist():
                dst.writestr(info, redact_bytes(src.read(info), self.secrets))
        scrubbed.replace(path)

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
        """A text artifact, redacted of every known secret."""
        path = self.dir / name
        path.write_text(redact(text, self.secrets))
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
        """Store every file under env/oem/date/job/attempt and write the manifest last."""
        when = when or datetime.now(UTC)
        job = self.job
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
            key = store.artifact_key(job.oem, job.job_id, job.attempt, name, when=when.date())
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
        key = store.artifact_key(
            job.oem, job.job_id, job.attempt, "manifest.json", when=when.date()
        )
        store.put_bytes(key, manifest.model_dump_json(indent=2).encode(), "application/json")
        return manifest

    def cleanup(self) -> None:
        """Remove the scratch folder."""
        shutil.rmtree(self.dir, ignore_errors=True)

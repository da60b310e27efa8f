"""One Chromium per worker, a fresh isolated context per job, recycled and relaunched as needed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import playwright
from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright

from submissions_pipeline.runner.config import (
    CHROMIUM_ARGS,
    BrowserSettings,
    EvidenceSettings,
    blocking_args,
)


def _running(pid: int) -> bool:
    """Whether a process still runs (a zombie awaiting its parent's wait does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def ensure_video_support(root: Path) -> None:
    """Point Playwright's video recorder at Debian's ffmpeg (it cannot download its own).

    Must run before the Playwright driver starts: the driver (a child process) reads
    PLAYWRIGHT_BROWSERS_PATH once, so it is handed the folder through its environment.
    """
    os.environ["PLAYWRIGHT_BROWSERS_PATH"] = str(root)
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return
    browsers = Path(playwright.__file__).parent / "driver" / "package" / "browsers.json"
    rev = next(
        b["revision"] for b in json.loads(browsers.read_text())["browsers"] if b["name"] == "ffmpeg"
    )
    target = root / f"ffmpeg-{rev}" / "ffmpeg-linux"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            target.symlink_to(ffmpeg)


@dataclass
class JobContext:
    """A context and its page, handed to one job and closed after it."""

    context: BrowserContext
    page: Page
    video_dir: Path | None
    crashed: bool = False


class BrowserWorker:
    """Owns the worker's single browser process and hands out isolated contexts under the cap.

    Contexts never outlive a job (no cookie bleed between dealers). The browser is relaunched
    after `recycle_browser_after` jobs, once in-flight contexts drain, or at once when it died.
    """

    def __init__(
        self,
        settings: BrowserSettings,
        evidence: EvidenceSettings,
        home: Path,
        *,
        block_hosts: Iterable[str] = (),
    ):
        self.settings = settings
        #: The OEMs' third-party hosts this browser never resolves (`[browser] block_hosts`);
        #: `blocking_args` dedupes and orders them into the one flag.
        self.block_hosts = list(block_hosts)
        self.evidence = evidence
        self.home = home
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._jobs_since_launch = 0
        self._open = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._launch_lock = asyncio.Lock()
        self._spare: asyncio.Task[JobContext | None] | None = None
        self._relaunch_requested = False
        self.launches = 0
        self.crashes = 0
        #: Relaunches asked for by a memory watcher (the browser tree grew past its limit).
        self.memory_relaunches = 0

    async def __aenter__(self) -> BrowserWorker:
        ensure_video_support(self.settings.browsers_path or self.home / "pw-browsers")
        self._pw = await async_playwright().start()
        await self._launch()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._drop_spare()
        if self._browser is not None:
            with contextlib.suppress(Exception):
                await self._browser.close()
        if self._pw is not None:
            await self._pw.stop()

    async def process_ids(self) -> dict[str, list[int]]:
        """PIDs of the browser's process tree by type (browser, renderer, gpu, utility...).

        Asked from Chromium itself over CDP: used for PSS measurements and crash tests.
        """
        if self._browser is None or not self._browser.is_connected():
            return {}
        cdp = await self._browser.new_browser_cdp_session()
        try:
            info = await cdp.send("SystemInfo.getProcessInfo")
        finally:
            with contextlib.suppress(Exception):
                await cdp.detach()
        out: dict[str, list[int]] = {}
        for proc in info.get("processInfo", []):
            out.setdefault(proc["type"], []).append(int(proc["id"]))
        return out

    async def _launch(self) -> None:
        assert self._pw is not None
        self._browser = await self._pw.chromium.launch(
            executable_path=self.settings.executable_path,
            headless=self.settings.headless,
            args=[*CHROMIUM_ARGS, *blocking_args(self.block_hosts)],
        )
        self._jobs_since_launch = 0
        self._relaunch_requested = False
        self.launches += 1

    def request_relaunch(self) -> None:
        """Relaunch the browser before the next job, once in-flight jobs finish on this one
        (kill-and-replace at a safe point: a job is never cut off for memory)."""
        if not self._relaunch_requested:
            self._relaunch_requested = True
            self.memory_relaunches += 1

    @property
    def contexts_in_use(self) -> int:
        """Contexts handed to jobs and not yet closed."""
        return self._open

    def _relaunch_due(self) -> bool:
        alive = self._browser is not None and self._browser.is_connected()
        due = (
            self._jobs_since_launch >= self.settings.recycle_browser_after
            or self._relaunch_requested
        )
        return not alive or due

    async def _ensure_browser(self) -> Browser:
        async with self._launch_lock:
            if self._relaunch_due():
                await self._drop_spare()
                if self._browser is None or not self._browser.is_connected():
                    self.crashes += 1
                else:
                    await self._drained.wait()  # let in-flight jobs finish on the old browser
                if self._browser is not None:
                    await self._close_browser(self._browser)
                await self._launch()
            assert self._browser is not None
            return self._browser

    async def _close_browser(self, browser: Browser) -> None:
        """Close the browser and wait (a few seconds at most) until its processes are gone,
        so the next one never runs beside the remains of the last: two trees at once are
        the peak a relaunch would otherwise add."""
        pids: list[int] = []
        with contextlib.suppress(Exception):
            pids = [pid for group in (await self.process_ids()).values() for pid in group]
        with contextlib.suppress(Exception):
            await browser.close()
        deadline = asyncio.get_running_loop().time() + 5.0
        while pids and asyncio.get_running_loop().time() < deadline:
            pids = [pid for pid in pids if _running(pid)]
            if pids:
                await asyncio.sleep(0.05)

    async def _create(self, record_video: bool) -> JobContext:
        return await self._new_context(await self._ensure_browser(), record_video)

    async def _prewarm(self, record_video: bool) -> JobContext | None:
        """The next job's context, opened ahead of need on the browser that is there, or
        nothing when that browser is about to be replaced: a pre-warm never starts a relaunch
        (it would wait for the job that asked for it and then hold a context nobody takes)."""
        # Checked without waiting for the lock: a relaunch under way holds it and awaits this
        # very task (`_drop_spare`).
        if self._launch_lock.locked() or self._relaunch_due() or self._browser is None:
            return None
        return await self._new_context(self._browser, record_video)

    async def _new_context(self, browser: Browser, record_video: bool) -> JobContext:
        video_dir = Path(tempfile.mkdtemp(prefix="video-")) if record_video else None
        w, h = self.settings.viewport
        vw, vh = self.evidence.video_size
        context = await browser.new_context(
            viewport={"width": w, "height": h},
            record_video_dir=str(video_dir) if video_dir else None,
            record_video_size={"width": vw, "height": vh} if video_dir else None,
            service_workers="block",
        )
        page = await context.new_page()
        jc = JobContext(context=context, page=page, video_dir=video_dir)
        page.on("crash", lambda _p: setattr(jc, "crashed", True))
        return jc

    async def _drop_spare(self) -> None:
        if self._spare is not None:
            spare, self._spare = self._spare, None
            with contextlib.suppress(Exception):
                jc = await spare
                if jc is not None:
                    await jc.context.close()

    async def open_context(
        self, *, record_video: bool, storage_state: dict | None = None
    ) -> JobContext:
        """A fresh context and page for one job; a pre-warmed one when it matches."""
        jc: JobContext | None = None
        if self._spare is not None and self._spare.done():
            spare, self._spare = self._spare, None
            try:
                candidate = spare.result()
                if candidate is None:
                    jc = None
                elif (
                    (candidate.video_dir is not None) == record_video
                    and (self._browser is not None and self._browser.is_connected())
                    and self._jobs_since_launch < self.settings.recycle_browser_after
                    and not self._relaunch_requested
                ):
                    jc = candidate
                else:
                    await candidate.context.close()
            except Exception:
                jc = None
        if jc is None:
            jc = await self._create(record_video)
        self._jobs_since_launch += 1
        self._open += 1
        self._drained.clear()
        if storage_state and storage_state.get("cookies"):
            await jc.context.add_cookies(storage_state["cookies"])
        if self.settings.prewarm and self._spare is None:
            self._spare = asyncio.ensure_future(self._prewarm(record_video))
        return jc

    async def close_context(self, jc: JobContext) -> Path | None:
        """Close a job's context (flushing its video) and return the video file, if any."""
        video_path: Path | None = None
        try:
            video = jc.page.video
            with contextlib.suppress(Exception):
                await jc.context.close()
            if video is not None:
                with contextlib.suppress(Exception):
                    video_path = Path(await video.path())
        finally:
            self._open -= 1
            if self._open == 0:
                self._drained.set()
        return video_path

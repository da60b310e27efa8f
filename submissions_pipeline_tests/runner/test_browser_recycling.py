"""Recycling the worker's browser leaves nothing of the old one behind and opens nothing extra
on the new one: the memory a long batch holds stays what its cap says. Real Chromium."""

from __future__ import annotations

import asyncio
import time

import psutil

from submissions_pipeline.runner.browser import BrowserWorker
from submissions_pipeline.runner.config import BrowserSettings, EvidenceSettings


def test_a_relaunch_keeps_one_job_and_one_spare_context_and_no_old_process(tmp_path):
    async def scenario() -> tuple[list[int], list[int], list[int]]:
        settings = BrowserSettings(context_cap=1, recycle_browser_after=2, prewarm=True)
        contexts_after_each_open: list[int] = []
        old_pids: list[int] = []
        async with BrowserWorker(settings, EvidenceSettings(video="off"), tmp_path) as worker:
            for job in range(5):
                if job == 2:  # the third job is the first on a new browser
                    old_pids = [p for pids in (await worker.process_ids()).values() for p in pids]
                jc = await worker.open_context(record_video=False)
                await jc.page.goto("about:blank")
                await asyncio.sleep(0.5)  # the spare's pre-warm settles
                assert worker._browser is not None
                contexts_after_each_open.append(len(worker._browser.contexts))
                await worker.close_context(jc)
            launches = worker.launches
            deadline = time.monotonic() + 10
            while any(psutil.pid_exists(p) for p in old_pids) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            lingering = [p for p in old_pids if psutil.pid_exists(p)]
        return contexts_after_each_open, [launches], lingering

    contexts, (launches,), lingering = asyncio.run(scenario())

    assert launches == 3  # jobs 1-2, 3-4, 5
    # The job's context and one pre-warmed spare, except on a browser's last job (its spare
    # would be the next browser's to open); never a third context, left by a pre-warm that
    # started the relaunch itself and was then forgotten.
    assert contexts == [2, 1, 2, 1, 2], contexts
    assert lingering == []

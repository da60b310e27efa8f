"""The PSS meter finds a real Chromium tree, launched from its binary or through a wrapper script.

Debian's `/usr/bin/chromium-headless-shell` is a shell script that runs the real binary without
exec, so a shell sits between Playwright's driver and the browser: the meter must find the browser
by its binary and leave out the shell, the Node driver, ffmpeg and Python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from playwright.sync_api import sync_playwright

from bench.pss import TreeCpuMeter, chromium_pids, tree_pss_mb
from submissions_pipeline.runner.browser import ensure_video_support
from submissions_pipeline.runner.config import CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

BROWSER_DIR = "/usr/lib/chromium"
WRAPPER = "/usr/bin/chromium-headless-shell"
NOT_BROWSER = ("node", "python", "ffmpeg")


def _exes_below() -> dict[int, str]:
    """PID -> executable of every live process below this one."""
    exes = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            exes[proc.pid] = proc.exe()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return exes


@pytest.mark.parametrize("executable", [f"{BROWSER_DIR}/chromium", WRAPPER])
def test_a_browser_tree_is_found_and_measured(
    executable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Path(executable).exists(), f"{executable} is missing: apt-get install chromium*"
    assert shutil.which("ffmpeg"), "ffmpeg is missing: the video recorder needs it"
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "pw-browsers"))
    ensure_video_support(tmp_path)
    meter = TreeCpuMeter(period_s=0.1)
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
            )
            try:
                # Two contexts, one recording video so that ffmpeg runs below us too.
                for video_dir in (tmp_path / "video", None):
                    context = browser.new_context(record_video_dir=video_dir)
                    context.new_page().set_content("<h1>two contexts</h1>")
                exes = _exes_below()
                mb, processes = tree_pss_mb(executable)
                pids = chromium_pids(executable)
                unnamed = chromium_pids()
                stable = exes.keys() & _exes_below().keys()  # alive throughout the readings
                meter.seconds()
                counted = meter.counted_pids()
            finally:
                browser.close()
    finally:
        helper.kill()
        helper.wait()
        meter.close()

    names = {os.path.basename(exe) for exe in exes.values()}
    for name in NOT_BROWSER:  # otherwise leaving them out would prove nothing
        assert any(n.startswith(name) for n in names), f"no {name} process ran below the test"
    assert mb > 0, f"{executable}: {mb} MB"
    assert processes > 1, f"{executable}: {processes} process(es)"
    for pid in pids:
        assert not os.path.basename(exes.get(pid, "")).startswith(NOT_BROWSER), exes.get(pid)
    # Exactly the processes running files of the browser's folder, as far as they lived through.
    in_browser_dir = {pid for pid, exe in exes.items() if exe.startswith(BROWSER_DIR + "/")}
    assert set(pids) & stable == in_browser_dir & stable, f"{executable}: {exes}"
    assert set(unnamed) & stable == set(pids) & stable, "the executable is a hint, not needed"
    if executable == WRAPPER:
        shells = {pid for pid, exe in exes.items() if os.path.basename(exe) in ("sh", "dash")}
        assert shells, "the wrapper's shell should sit between the driver and the browser"
        assert not shells & set(pids)
    alive = {pid for pid in pids if psutil.pid_exists(pid)}
    assert alive <= counted, "the CPU meter missed browser processes"

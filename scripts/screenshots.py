"""Screenshots of the ops console's main pages for the README (`make screenshots`).

Starts the sandbox portals, makes a small night of real work with the real runner (proven
submissions, dead letters of an unknown portal UI, a portal answering 503), serves the console
over it, signs in with Chromium and writes one PNG per page to `docs/console/`. Everything lives
in a temp folder and on loopback; the demo account's password is random and never printed.

Usage: python scripts/screenshots.py [OUTPUT_DIR]
"""

from __future__ import annotations

import secrets
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "console"
#: The headless shell is the build Playwright uses for headless Chromium itself (and ~2x faster).
CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 860}
OPERATOR = "ops-demo"


class Page(NamedTuple):
    """One screenshot: its file name (no extension), its path (`{failed}`: a dead letter's id)
    and what the README says it shows."""

    name: str
    path: str
    caption: str


PAGES = [
    Page("tonight", "/", "Tonight: per OEM, last night's run, fail rate, p95, slowest step"),
    Page("jobs", "/jobs", "Jobs: filter by OEM, state, reason, error class; search"),
    Page("failed-job", "/jobs/{failed}", "A failed job: failure object, screenshots, steps"),
    Page("review", "/review", "Review queue: re-drive, mark reviewed, submitted by hand"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_demo_night(work: Path, sandbox):  # type: ignore[no-untyped-def]
    """A store and evidence with a realistic mix: northwind submits, aurora's portal shows a UI
    its selectors do not know (dead letters), kestrel's answers 503 (retries scheduled)."""
    import adapters
    from sandbox.accounts import credentials_document
    from submissions_pipeline.artifacts import LocalArtifactStore
    from submissions_pipeline.credentials import JsonCredentialProvider
    from submissions_pipeline.crm.seed import build_demo_cases
    from submissions_pipeline.domain.case import validate_case
    from submissions_pipeline.runner import BatchConfig, EvidenceSettings, RunnerDeps, run_batch
    from submissions_pipeline.store import JobStore

    oems = ["northwind", "aurora", "kestrel"]
    store = JobStore.from_url(f"sqlite:///{work / 'jobs.db'}")
    deps = RunnerDeps(
        store=store,
        artifacts=LocalArtifactStore(work / "artifacts"),
        credentials=JsonCredentialProvider(credentials_document(oems)),
        adapters=adapters.registry().load_adapters(oems),
        portal_urls={oem: sandbox.base_url(oem) for oem in oems},
        home=work,
    )
    aurora = deps.adapters["aurora"]
    deps.adapters["aurora"] = type(aurora)(
        aurora.settings, aurora.folder, {"v1": aurora.selector_sets["v1"]}
    )
    sandbox.configure("aurora", ui_version="v2")
    sandbox.configure("kestrel", error_rate=1.0)
    for oem, n in (("northwind", 4), ("aurora", 3), ("kestrel", 2)):
        demo = build_demo_cases(oem, per_oem=12, seed=7, today=date.today())
        valid = [c.raw for c in demo if c.invalid_field is None and not c.raw["test_record"]]
        for raw in valid[:n]:
            store.enqueue(validate_case(raw))
    for oem in oems:
        run_batch(BatchConfig(oem=oem, seed=7, evidence=EvidenceSettings(video="on")), deps)
    return deps


@contextmanager
def serve_console(deps, work: Path) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """The console over the demo night on a free loopback port: (url, demo password)."""
    import uvicorn

    from submissions_pipeline.console import ConsoleDeps, create_app
    from submissions_pipeline.console.auth import Accounts, Role, SessionSigner
    from submissions_pipeline.oems import oem_registry

    password = secrets.token_urlsafe(12)
    accounts = Accounts(work / "console-accounts.json")
    accounts.put(OPERATOR, password, Role.OPERATOR)
    registry = oem_registry()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    deps.artifacts.console_url = url
    app = create_app(
        ConsoleDeps(
            store=deps.store,
            artifacts=deps.artifacts,
            accounts=accounts,
            signer=SessionSigner(secrets.token_bytes(32), ttl_s=3600),
            oems={oem: registry.settings(oem) for oem in registry.oem_keys()},
            adapters_dir=ROOT / "adapters",
        )
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the console did not start")
        time.sleep(0.05)
    try:
        yield url, password
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def take_screenshots(url: str, password: str, failed_job: str, out: Path) -> list[Path]:
    """Sign in as an operator would and write one full-page PNG per entry of `PAGES`."""
    from playwright.sync_api import expect, sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(base_url=url, viewport=VIEWPORT).new_page()
        page.goto("/login")
        page.get_by_label("Name").fill(OPERATOR)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        for p in PAGES:
            page.goto(p.path.format(failed=failed_job))
            page.wait_for_load_state("networkidle")
            target = out / f"{p.name}.png"
            page.screenshot(path=str(target), full_page=True)
            written.append(target)
        browser.close()
    return written


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from sandbox import SandboxServer
    from submissions_pipeline.domain import SubmissionState

    out = Path(argv[1]) if len(argv) > 1 else OUTPUT
    with tempfile.TemporaryDirectory(prefix="console-shots-") as tmp, SandboxServer() as sandbox:
        work = Path(tmp)
        deps = make_demo_night(work, sandbox)
        failed = deps.store.list_jobs(oem="aurora", states=[SubmissionState.DEAD_LETTERED])
        if not failed:
            raise RuntimeError("the demo night made no dead letter to show")
        with serve_console(deps, work) as (url, password):
            for path in take_screenshots(url, password, failed[0].job_id, out):
                print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        deps.store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

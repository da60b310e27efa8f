"""Knobs of a worker: the browser, concurrency, per-step budgets and evidence capture."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

log = logging.getLogger(__name__)

#: Playwright's default headless browser, as Debian packages it. The real binary, never the
#: `/usr/bin` wrapper: that is a shell script that does not `exec`, so a shell would sit between
#: Playwright and the browser, kills could orphan the browser and memory readers would miss it.
HEADLESS_SHELL = "/usr/lib/chromium/chromium-headless-shell"

#: Debian's full Chromium: headed debugging and anything the headless shell cannot do.
FULL_CHROMIUM = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")

_warned_no_shell = False


def full_chromium() -> str:
    """Debian's full Chromium; the real binary skips a wrapper script that prints shell noise."""
    for candidate in FULL_CHROMIUM:
        if Path(candidate).exists():
            return candidate
    return FULL_CHROMIUM[-1]


def default_chromium(headless: bool = True) -> str:
    """The browser a worker launches when none is configured.

    Headless runs get the headless shell (about twice the throughput of the full browser for the
    same pages); headed runs, and machines without the shell, get the full browser, the latter
    with one log line so a slow fleet can tell why.
    """
    global _warned_no_shell
    if headless:
        if Path(HEADLESS_SHELL).exists():
            return HEADLESS_SHELL
        if not _warned_no_shell:
            _warned_no_shell = True
            log.warning(
                "chromium-headless-shell is not installed (%s): using the full Chromium, about "
                "half the throughput; scripts/install-system-deps.sh installs it",
                HEADLESS_SHELL,
            )
    return full_chromium()


def browser_label(executable_path: str) -> str:
    """What a report calls a browser binary: the headless shell or the full Chromium."""
    name = Path(executable_path).name
    if "headless" in name or name == "headless_shell":
        return f"headless shell ({executable_path})"
    return f"full Chromium ({executable_path})"


#: Flags that keep Chromium lean and quiet on a closed network: without the background-networking
#: ones it keeps calling out to Google services, and every call is refused here.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-extensions",
]


def blocking_args(hosts: Iterable[str]) -> list[str]:
    """Chromium flags that leave `hosts` unresolved (each OEM's `[browser] block_hosts`).

    Resolved in the browser's network service, so a blocked request costs nothing and nothing
    passes through the driver: routing each request through Playwright to drop a few would
    make every other request pay a round trip.
    """
    wanted = sorted(set(hosts))
    if not wanted:
        return []
    return ["--host-resolver-rules=" + ", ".join(f"MAP {h} ~NOTFOUND" for h in wanted)]


class BrowserSettings(BaseModel):
    """One browser process per worker, many isolated contexts under a cap."""

    executable_path: str = Field(
        "",
        description="Browser binary; empty: the headless shell when headless and installed, "
        "else the full Chromium (Playwright cannot download its own on these machines).",
    )
    browsers_path: Path | None = Field(
        None,
        description="Where Playwright finds its ffmpeg (PLAYWRIGHT_BROWSERS_PATH); default: "
        "the worker's home/pw-browsers.",
    )
    headless: bool = True
    context_cap: int = Field(
        3, ge=1, le=16, description="Concurrent contexts per worker (1-2 per vCPU is stable)."
    )
    recycle_browser_after: int = Field(
        200, ge=1, description="Relaunch the browser after this many jobs (keeps memory flat)."
    )
    prewarm: bool = Field(True, description="Open the next context and page ahead of need.")
    session_reuse_s: float = Field(
        600.0, ge=0, description="Reuse a dealer's logged-in storage state this long (0: never)."
    )
    viewport: tuple[int, int] = (1280, 900)

    @model_validator(mode="after")
    def _pick_browser(self) -> BrowserSettings:
        # Chosen after validation because the choice depends on `headless`.
        if not self.executable_path:
            self.executable_path = default_chromium(self.headless)
        return self


class StepBudgets(BaseModel):
    """Hard per-step timeouts (fail fast as a site flake) and the targets reports compare to."""

    default_s: float = Field(15.0, gt=0, description="Hard timeout of a step without its own.")
    per_step_s: dict[str, float] = Field(
        default_factory=lambda: {"search": 40.0, "login": 20.0, "confirm": 20.0},
        description="Hard timeouts by step name (the slow search gets the most).",
    )
    job_s: float = Field(120.0, gt=0, description="Hard timeout of a whole attempt.")
    target_step_p95_s: float = Field(8.0, description="Target p95 of each step, for reports.")
    target_job_s: float = Field(60.0, description="Target time of one attempt, for reports.")
    action_timeout_ms: float = Field(
        8000, gt=0, description="Playwright's wait for one element or navigation."
    )

    def for_step(self, step: str) -> float:
        """The hard timeout of one step."""
        return self.per_step_s.get(step, self.default_s)


class EvidenceSettings(BaseModel):
    """What proof each attempt keeps: cheap by default (two screenshots and a trace without DOM
    snapshots cost a few per cent), rich where it pays (retries, failures, a sampled share)."""

    def records_video(self, attempt: int, sampled: bool) -> bool:
        """Whether this attempt's context records video at all."""
        if self.video == "off":
            return False
        if self.video == "on-retry":
            return attempt > 1 or sampled
        return True

    def keeps_video(self, failed: bool, sampled: bool) -> bool:
        """Whether a recorded video is stored: always on failure, on success when sampled."""
        return self.video == "on" or failed or sampled

    trace: bool = Field(True, description="Record a Playwright trace of every attempt.")
    trace_snapshots_on_retry: bool = Field(
        True, description="DOM snapshots in the trace from the second attempt on (-22 % if always)."
    )
    video: str = Field(
        "on-retry",
        pattern="^(off|on-retry|retain-on-failure|on)$",
        description="off | on-retry (record retries and a sampled share of first attempts, "
        "keep on failure or sample; recording costs ~1/3 of a job's CPU) | retain-on-failure "
        "(record every attempt, keep on failure or sample) | on (record and keep all)",
    )
    video_sample_rate: float = Field(
        0.05, ge=0, le=1, description="Share of first attempts recorded and kept on success."
    )
    video_size: tuple[int, int] = (800, 600)


class BatchConfig(BaseModel):
    """One worker's batch: which jobs, how many, how fast. Visible in Dagster's launchpad."""

    oem: str | None = Field(None, description="Only this OEM's jobs (None: any).")
    max_jobs: int = Field(500, ge=0, description="Stop after this many attempts.")
    time_budget_s: float = Field(3600.0, gt=0, description="Stop claiming after this long.")
    prefer_redaction_sensitive: bool = Field(
        False, description="Claim redaction-sensitive cases first."
    )
    lease_s: float = Field(180.0, gt=0, description="Lease per claim; heartbeats renew it.")
    dry_run: bool = Field(False, description="Claim nothing; report what is due.")
    worker_id: str | None = Field(None, description="Defaults to host:pid:random.")
    run_id: str | None = Field(None, description="Dagster run id stamped on claimed jobs.")
    browser: BrowserSettings = Field(default_factory=BrowserSettings)
    budgets: StepBudgets = Field(default_factory=StepBudgets)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    seed: int | None = Field(None, description="Seeds jitter and video sampling (tests).")

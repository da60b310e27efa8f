"""The project's variants on the benchmark's jobs: the batch runner alone, and the full pipeline.

Both use the project's defaults (evidence, session reuse, pre-warmed contexts, recycling) and
differ from the baselines only where the project does: nothing is tuned for the benchmark.
Job and step times come from the job store (`jobs.duration_s`, `job_steps`), what the runner
itself records.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from adapters import load_adapter
from bench.cases import BENCH_OEM
from bench.measures import JobTiming, VariantRun
from bench.pss import client_cpu_seconds
from sandbox.accounts import credentials_document
from submissions_pipeline.artifacts import LocalArtifactStore
from submissions_pipeline.credentials import JsonCredentialProvider
from submissions_pipeline.domain import Case, Job, SubmissionState
from submissions_pipeline.runner import (
    BatchConfig,
    BrowserSettings,
    EvidenceSettings,
    RunnerDeps,
    run_batch,
)
from submissions_pipeline.settings import load_settings
from submissions_pipeline.store import JobStore

S = SubmissionState

#: Seeds the runner's jitter and 5 % video sample, so runs are comparable.
RUNNER_SEED = 7


class ObservedJobStore(JobStore):
    """The job store, calling back each time a job's evidence is stored (memory mode's clock).

    An observer, not a stand-in: every call goes to the real store first.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.evidence_stored = 0
        self.on_evidence_stored: Callable[[int], None] | None = None

    def transition(self, job_id: str, to_state: SubmissionState, **kwargs: Any) -> Job:
        job = super().transition(job_id, to_state, **kwargs)
        if to_state is S.EVIDENCE_STORED:
            self.evidence_stored += 1
            if self.on_evidence_stored is not None:
                self.on_evidence_stored(self.evidence_stored)
        return job


def jobs_from_store(store: JobStore, ok_states: Iterable[SubmissionState]) -> list[JobTiming]:
    """Each job's outcome, duration and last attempt's step times, as the runner recorded them."""
    ok_states = set(ok_states)
    steps: dict[tuple[str, int], dict[str, float]] = {}
    for row in store.step_timings():
        steps.setdefault((row["job_id"], row["attempt"]), {})[row["step"]] = row["seconds"]
    out = []
    for job in store.list_jobs(oem=BENCH_OEM):
        ok = job.state in ok_states and bool(job.reference)
        out.append(
            JobTiming(
                case_id=job.case_id,
                ok=ok,
                seconds=job.duration_s or 0.0,
                steps=steps.get((job.job_id, job.attempt), {}),
                reference=job.reference,
                error=None if ok else f"{job.state.value} {job.reason_code or ''}".strip(),
            )
        )
    return out


def runner_deps(
    store: JobStore,
    base_url: str,
    scratch: Path,
    cpu_clock: Callable[[], float] | None = None,
) -> RunnerDeps:
    """A worker's dependencies on the embedded default: local evidence, sandbox dealers."""
    return RunnerDeps(
        store=store,
        artifacts=LocalArtifactStore(scratch / "artifacts"),
        credentials=JsonCredentialProvider(credentials_document([BENCH_OEM])),
        adapters={BENCH_OEM: load_adapter(BENCH_OEM)},
        portal_urls={BENCH_OEM: base_url},
        home=scratch,
        cpu_clock=cpu_clock,
    )


def run_runner(
    base_url: str,
    cases: list[dict[str, Any]],
    cap: int,
    scratch: Path,
    executable_path: str,
    *,
    on_evidence_stored: Callable[[int], None] | None = None,
    recycle_browser_after: int | None = None,
    video: str | None = None,
    step_cpu: Callable[[], float] | None = None,
) -> VariantRun:
    """The batch runner alone (no Dagster) on a fresh SQLite store: one `run_batch` over N jobs.

    Everything at the runner's defaults; `recycle_browser_after` only for memory mode, `video`
    only for the ablation that prices video recording.
    """
    store = ObservedJobStore.from_url(f"sqlite:///{scratch / 'jobs.db'}")
    try:
        for raw in cases:
            store.enqueue(Case.model_validate(raw))
        store.on_evidence_stored = on_evidence_stored
        cfg = BatchConfig(
            oem=BENCH_OEM,
            max_jobs=len(cases),
            browser=BrowserSettings(
                context_cap=cap,
                executable_path=executable_path,
                # The folder the harness set up once for every variant's video: a scratch one
                # would be deleted after this run, under the next variant's driver.
                browsers_path=load_settings().browsers_path,
                **(
                    {"recycle_browser_after": recycle_browser_after}
                    if recycle_browser_after
                    else {}
                ),
            ),
            seed=RUNNER_SEED,
            **({"evidence": EvidenceSettings(video=video)} if video else {}),
        )
        deps = runner_deps(store, base_url, scratch, step_cpu)
        cpu0, t0 = client_cpu_seconds(), time.perf_counter()
        report = run_batch(cfg, deps)
        wall, cpu = time.perf_counter() - t0, client_cpu_seconds() - cpu0
        jobs = jobs_from_store(store, [S.EVIDENCE_STORED])
        step_cpu_by_case = {o.case_id: o.step_cpu_s for o in report.outcomes}
        for job in jobs:
            job.step_cpu = step_cpu_by_case.get(job.case_id, {})
        return VariantRun(
            wall_s=wall,
            jobs=jobs,
            concurrency=cap,
            browser_launches=report.browser_launches,
            note=f"stop: {report.stop_reason}",
            cpu_s=cpu,
        )
    finally:
        store.dispose()


# ------------------------------------------------------------------------ the full pipeline


def pipeline_pending_reason() -> str | None:
    """None when the Dagster wiring can run; otherwise why the pipeline variant is pending."""
    try:
        import submissions_pipeline.definitions as definitions
        from submissions_pipeline.assets.partitions import NIGHTLY_JOB_NAME  # noqa: F401
        from submissions_pipeline.assets.submission_runs import BROWSER_POOL  # noqa: F401
        from submissions_pipeline.resources import BrowserResource  # noqa: F401
    except Exception as exc:  # the wiring is written concurrently; report, don't crash
        return f"Dagster wiring not importable yet: {type(exc).__name__}: {exc}"
    missing = [n for n in ("defs", "build_definitions") if not hasattr(definitions, n)]
    if missing:
        return f"submissions_pipeline/definitions.py does not define {', '.join(missing)} yet"
    return None


#: A minimal persistent instance: SQLite storage on disk (pools are enforced only there).
_DAGSTER_YAML = """\
storage:
  sqlite:
    base_dir: {base}
concurrency:
  pools:
    default_limit: 1
    granularity: op
telemetry:
  enabled: false
"""


def run_pipeline(
    base_url: str,
    cases: list[dict[str, Any]],
    cap: int,
    scratch: Path,
    executable_path: str,
) -> VariantRun:
    """The Dagster asset graph in-process on a persistent instance, one OEM partition.

    The N cases go into the embedded CRM; one run of the nightly job reads and enqueues them
    (crm_cases), submits them with one worker of `cap` contexts (submission_runs), bundles the
    evidence and writes the outcomes back (evidence_bundles, crm_updates), with every check.
    Wall time is the whole run.
    """
    from submissions_pipeline.crm import EmbeddedCrm
    from submissions_pipeline.definitions import build_definitions
    from submissions_pipeline.launcher import launch_nightly, nightly_job, persistent_instance
    from submissions_pipeline.resources import (
        BrowserResource,
        CredentialsResource,
        EmbeddedCrmResource,
        JobStoreResource,
        LocalArtifactStoreResource,
        PortalsResource,
    )

    db_url = f"sqlite:///{scratch / 'submissions.db'}"
    crm = EmbeddedCrm.from_url(db_url)
    try:
        for raw in cases:
            crm.add_case(raw)
    finally:
        crm.dispose()
    creds = scratch / "credentials.json"
    fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(credentials_document([BENCH_OEM]), out)
    home = scratch / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(_DAGSTER_YAML.format(base=json.dumps(str(home))))

    defs = build_definitions(
        {
            "job_store": JobStoreResource(db_url=db_url),
            "crm": EmbeddedCrmResource(db_url=db_url),
            "artifacts": LocalArtifactStoreResource(root=str(scratch / "artifacts"), env="dev"),
            "browser": BrowserResource(
                home=str(scratch),
                context_cap=cap,
                executable_path=executable_path,
                # The harness's folder, as for the runner: the driver's environment keeps the
                # path, and a scratch one would be deleted under the next variant's videos.
                browsers_path=str(load_settings().browsers_path),
            ),
            "credentials": CredentialsResource(credentials_file=str(creds)),
            "portals": PortalsResource(urls={BENCH_OEM: base_url}),
        }
    )
    plan = {
        "workers": 1,  # one Chromium, like every other variant
        "context_cap": cap,
        "max_jobs": len(cases),
        "jobs_per_worker": max(1, len(cases)),
    }
    store = JobStore.from_url(db_url, migrate_schema=False)
    try:
        with persistent_instance(home, browser_slots=1) as instance:
            cpu0, t0 = client_cpu_seconds(), time.perf_counter()
            run = launch_nightly(
                nightly_job(defs),
                BENCH_OEM,
                instance,
                store=store,
                trigger="bench",
                plan=plan,
                log_level="WARNING",
            )
            wall, cpu = time.perf_counter() - t0, client_cpu_seconds() - cpu0
        note = "" if run.success else f"run failed: {(run.failure_reason or '')[:400]}"
        jobs = jobs_from_store(store, [S.CRM_UPDATED])
    finally:
        store.dispose()
    return VariantRun(
        wall_s=wall, jobs=jobs, concurrency=cap, browser_launches=1, note=note, cpu_s=cpu
    )

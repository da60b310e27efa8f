"""Fixtures for the Dagster wiring: persistent test instances, the sandbox, S3, arranged jobs.

The servers (sandbox portals: `sandbox`; moto's S3: `moto_s3`) come from the root conftest,
once per session on free loopback ports. Each test gets its own Dagster instance (SQLite in a
temp folder, so pools and run history are real) and its own project database from the root
conftest's `sqlite_url` / `pg_url` / `db_url`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetSelection,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    define_asset_job,
    instance_for_test,
)

from submissions_pipeline.artifacts import ArtifactStore
from submissions_pipeline.assets import ALL_ASSETS, crm_updates, submission_runs
from submissions_pipeline.checks import ALL_CHECKS
from submissions_pipeline.crm import EmbeddedCrm
from submissions_pipeline.demo import write_sandbox_credentials
from submissions_pipeline.domain import Job, Step, SubmissionState
from submissions_pipeline.domain.evidence import EvidenceItem, EvidenceManifest
from submissions_pipeline.resources import (
    ArtifactStoreResource,
    BrowserResource,
    CredentialsResource,
    EmbeddedCrmResource,
    JobStoreResource,
    LocalArtifactStoreResource,
    PortalsResource,
)
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import case_record, make_case

S = SubmissionState
OEM = "northwind"
PNG = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------ servers


@pytest.fixture(scope="session")
def sandbox_credentials(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every sandbox dealer account, as the JSON file the credentials resource reads."""
    path = tmp_path_factory.mktemp("secrets") / "credentials.json"
    return write_sandbox_credentials(path, ["northwind", "aurora", "kestrel"])


@pytest.fixture(scope="session")
def worker_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Workers' folder (Playwright's ffmpeg link) shared by the session."""
    return tmp_path_factory.mktemp("worker-home")


# ------------------------------------------------------------------------ Dagster


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    """A persistent Dagster instance in a temp folder (pools and run records are real)."""
    with instance_for_test() as inst:
        yield inst


def make_resources(
    db_url: str,
    artifacts_root: Path,
    *,
    worker_home: Path,
    portal_urls: Mapping[str, str] | None = None,
    credentials_file: Path | None = None,
    artifacts: ArtifactStoreResource | None = None,
) -> dict[str, Any]:
    """The dev resource set pointed at a test database, folder and sandbox."""
    return {
        "job_store": JobStoreResource(db_url=db_url),
        "crm": EmbeddedCrmResource(db_url=db_url),
        "artifacts": artifacts or LocalArtifactStoreResource(root=str(artifacts_root), env="dev"),
        "browser": BrowserResource(home=str(worker_home), context_cap=2),
        "credentials": CredentialsResource(credentials_file=str(credentials_file))
        if credentials_file
        else CredentialsResource(),
        "portals": PortalsResource(urls=dict(portal_urls or {})),
    }


@pytest.fixture
def resources(sqlite_url: str, tmp_path: Path, worker_home: Path) -> dict[str, Any]:
    """Resources on this test's SQLite database and artifact folder (no portals)."""
    return make_resources(sqlite_url, tmp_path / "artifacts", worker_home=worker_home)


def run_selection(
    resources: Mapping[str, Any],
    instance: DagsterInstance,
    selection: AssetSelection,
    *,
    oem: str | None = OEM,
    run_id: str | None = None,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> ExecuteInProcessResult:
    """Execute a selection of assets (with their checks) for one OEM partition, in-process."""
    job = define_asset_job("test_selection", selection=selection)
    defs = Definitions(
        assets=ALL_ASSETS, asset_checks=ALL_CHECKS, jobs=[job], resources=dict(resources)
    )
    return defs.resolve_job_def("test_selection").execute_in_process(
        partition_key=oem,
        instance=instance,
        run_id=run_id,
        raise_on_error=False,
        run_config=run_config,
        tags=tags,
    )


#: Run config that keeps submission_runs from starting browsers: one worker that only reports.
DRY_RUN = {"ops": {"submission_runs": {"ops": {"plan_workers": {"config": {"dry_run": True}}}}}}


def run_checks(
    resources: Mapping[str, Any], instance: DagsterInstance, asset: str, *, oem: str = OEM
) -> ExecuteInProcessResult:
    """Evaluate the checks of one asset for a partition, through a run of that asset.

    Dagster cannot run a partitioned check without its asset in-process (a checks-only
    selection has no partitions), so the run includes the asset, made harmless: submission_runs
    as a dry run (nothing claimed, no browser), crm_updates with nothing to write (idle).
    """
    target = {"submission_runs": submission_runs, "crm_updates": crm_updates}[asset]
    return run_selection(
        resources,
        instance,
        AssetSelection.assets(target),
        oem=oem,
        run_config=DRY_RUN if asset == "submission_runs" else None,
    )


def check_result(result: ExecuteInProcessResult, check_name: str) -> Any:
    """The one evaluation of a check in a run."""
    evals = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == check_name
    ]
    assert len(evals) == 1, f"{check_name} evaluated {len(evals)} times"
    return evals[0]


def metadata_of(result: ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    """The plain values of an asset's materialization metadata in a run."""
    [mat] = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key.to_user_string() == asset
    ]
    return {k: getattr(v, "value", v) for k, v in mat.materialization.metadata.items()}


# ------------------------------------------------------------------------ arranged data


@pytest.fixture
def store(sqlite_url: str) -> Iterator[JobStore]:
    """The job store on this test's SQLite database (the `resources` fixture's database)."""
    s = JobStore.from_url(sqlite_url)
    yield s
    s.dispose()


@pytest.fixture
def crm(sqlite_url: str, store: JobStore) -> Iterator[EmbeddedCrm]:
    """The embedded CRM in the same database."""
    c = EmbeddedCrm.from_url(sqlite_url)
    yield c
    c.dispose()


def arrange_proven_job(
    store: JobStore,
    crm: EmbeddedCrm,
    artifacts: ArtifactStore,
    n: int,
    *,
    oem: str = OEM,
    run_id: str | None = None,
    worker: str = "test-worker",
    duration_s: float = 12.0,
) -> Job:
    """A case in the CRM whose job a worker proved: screenshots, manifest, reference stored."""
    crm.add_case(case_record(n, oem=oem))
    job_id = store.enqueue(make_case(n, oem=oem)).job_id
    claimed = store.claim(worker, oem=oem, limit=50, run_id=run_id)
    job = next(j for j in claimed if j.job_id == job_id)
    for other in claimed:  # leave anything else claimable, as it was
        if other.job_id != job_id:
            store.transition(other.job_id, S.QUEUED, actor=worker, lease_owner=worker)
    when = datetime.now(UTC)
    reference = f"NW-2026-{n:06d}"
    manifest = EvidenceManifest(
        job_id=job.job_id,
        case_id=job.case_id,
        oem=oem,
        attempt=job.attempt,
        reference=reference,
        captured_at=when,
    )
    for name in ("pre_submit.png", "post_confirm.png"):
        key = artifacts.artifact_key(oem, job.job_id, job.attempt, name, when=when.date())
        stored = artifacts.put_bytes(key, PNG + name.encode(), "image/png")
        manifest.items.append(
            EvidenceItem(
                name=name, key=key, sha256=stored.sha256, size=stored.size, content_type="image/png"
            )
        )
    manifest_key = artifacts.artifact_key(
        oem, job.job_id, job.attempt, "manifest.json", when=when.date()
    )
    artifacts.put_bytes(manifest_key, manifest.model_dump_json().encode(), "application/json")
    store.transition(
        job.job_id,
        S.SUBMITTED,
        actor=worker,
        lease_owner=worker,
        step=Step.REFERENCE_PARSED.value,
        reference=reference,
        submitted_by_automation=True,
    )
    return store.transition(
        job.job_id,
        S.EVIDENCE_STORED,
        actor=worker,
        lease_owner=worker,
        step=Step.EVIDENCE_STORED.value,
        evidence={"manifest_key": manifest_key, **manifest.model_dump(mode="json")},
        duration_s=duration_s,
    )

"""Fleet mode: the nightly run drives no browser; outside workers do, and the run reports the
attempts they made, with evidence and CRM updates working as on one machine."""

from __future__ import annotations

from dagster import DagsterInstance

from submissions_pipeline.crm import CrmStatus, EmbeddedCrm, seed_demo_cases
from submissions_pipeline.definitions import build_definitions
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.resources import BrowserResource
from submissions_pipeline_tests.dagster.conftest import make_resources, metadata_of
from submissions_pipeline_tests.fleet.harness import wait_until


def test_a_nightly_run_in_fleet_mode_reports_the_attempts_outside_workers_made(
    fleet, pg_store, pg_url, sandbox, tmp_path
):
    crm = EmbeddedCrm.from_url(pg_url)
    seeded = seed_demo_cases(crm, oems=["northwind"], per_oem=6).per_oem["northwind"]
    outside = fleet.start("--oem", "northwind")
    wait_until(lambda: outside.get("/readyz")[0] == 200)  # up before the run enqueues

    resources = make_resources(pg_url, tmp_path / "artifacts", worker_home=tmp_path)
    resources["browser"] = BrowserResource(home=str(tmp_path), driver="fleet")
    job = build_definitions(resources).resolve_job_def("submissions_nightly")
    result = job.execute_in_process(partition_key="northwind", instance=DagsterInstance.ephemeral())

    assert result.success
    runs = metadata_of(result, "submission_runs")
    assert runs["browser_driver"] == "fleet"
    assert runs["attempts"] == seeded.valid and runs["due_after"] == 0
    table = result.output_for_node("submission_runs")
    assert len(table) and all(f":{outside.proc.pid}:" in w for w in table["worker_id"])
    assert {j.state for j in pg_store.list_jobs(oem="northwind")} == {S.CRM_UPDATED}
    written = [c for c in crm.list_cases(oem="northwind") if c.status is CrmStatus.SUBMITTED]
    assert len(written) == seeded.valid == len(sandbox.ledger("northwind"))
    assert outside.terminate() == 0
    crm.dispose()

"""The local evidence TTL is enforced by a daily Dagster job, and what expired stays explained."""

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import DagsterInstance, build_schedule_context

from submissions_pipeline.console.evidence import attempts_of
from submissions_pipeline.crm import EmbeddedCrm
from submissions_pipeline.definitions import build_definitions
from submissions_pipeline.evidence_purge import EVIDENCE_PURGE_JOB_NAME, daily_evidence_purge
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.dagster.conftest import arrange_proven_job


def _worked_days_ago(root: Path, manifest_key: str, days: int) -> None:
    """Make one attempt's evidence look `days` old: its manifest's capture time and file ages."""
    manifest = root / manifest_key
    doc = json.loads(manifest.read_text())
    doc["captured_at"] = (datetime.now(UTC) - timedelta(days=days)).isoformat()
    manifest.write_text(json.dumps(doc))
    then = (datetime.now(UTC) - timedelta(days=days)).timestamp()
    for path in manifest.parent.iterdir():
        os.utime(path, (then, then))


def test_a_daily_job_purges_expired_evidence_and_the_console_shows_it_expired_with_its_manifest(
    resources, instance: DagsterInstance, store: JobStore, crm: EmbeddedCrm
):
    artifacts = resources["artifacts"].get_store()
    root = Path(resources["artifacts"].root)
    old = arrange_proven_job(store, crm, artifacts, 1)
    fresh = arrange_proven_job(store, crm, artifacts, 2)
    for job in (old, fresh):
        bundle = job.evidence["manifest_key"].replace("manifest.json", "bundle.json")
        artifacts.put_bytes(bundle, b'{"complete": true}', "application/json")
    _worked_days_ago(root, old.evidence["manifest_key"], days=31)  # TTL is 30 days
    defs = build_definitions(resources)

    tick = build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 27, 7, 30, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    [request] = daily_evidence_purge.evaluate_tick(tick).run_requests
    assert request.run_key == "purge:2026-11-27"
    assert daily_evidence_purge.job_name == EVIDENCE_PURGE_JOB_NAME
    result = defs.resolve_job_def(EVIDENCE_PURGE_JOB_NAME).execute_in_process(instance=instance)

    assert result.success
    [materialized] = [
        e.step_output_data.metadata
        for e in result.all_events
        if e.event_type_value == "STEP_OUTPUT"
    ]
    assert materialized["deleted"].value == 2  # the old attempt's two screenshots
    folder = (root / old.evidence["manifest_key"]).parent
    assert sorted(p.name for p in folder.iterdir()) == ["bundle.json", "manifest.json"]
    assert all((root / i["key"]).is_file() for i in fresh.evidence["items"])

    # The console: the old attempt is expired, its manifest still lists what was there.
    [expired] = attempts_of(artifacts, store.get(old.job_id), datetime.now(UTC))
    assert expired.expired and expired.manifest is not None
    assert {c.name: c.status for c in expired.checks} == {
        "pre_submit.png": "expired",
        "post_confirm.png": "expired",
    }
    [kept] = attempts_of(artifacts, store.get(fresh.job_id), datetime.now(UTC))
    assert not kept.expired and {c.status for c in kept.checks} == {"ok"}

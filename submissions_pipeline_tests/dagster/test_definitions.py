"""The code location loads in every environment, and both Dagster instance files work."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, EnvVar
from sqlalchemy.engine import make_url

from adapters import oem_keys
from submissions_pipeline import definitions
from submissions_pipeline.assets.submission_runs import BROWSER_POOL, run_worker_batch
from submissions_pipeline.definitions import build_definitions
from submissions_pipeline.resource_sets import resource_set
from submissions_pipeline.resources import S3ArtifactStoreResource
from submissions_pipeline.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_dagster_definitions_validate_passes(tmp_path: Path):
    env = {
        **os.environ,
        "SUBMISSIONS_HOME": str(tmp_path),
        "SUBMISSIONS_ENV": "dev",
        "DAGSTER_HOME": str(tmp_path),
    }
    env.pop("SUBMISSIONS_DB_URL", None)
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr


def test_dg_check_defs_passes_on_the_project_configuration(tmp_path: Path):
    env = {**os.environ, "SUBMISSIONS_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    env.pop("SUBMISSIONS_DB_URL", None)
    dg = Path(sys.executable).parent / "dg"
    done = subprocess.run(
        [str(dg), "check", "defs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully" in done.stdout + done.stderr


def test_the_code_location_has_the_graph_checks_schedules_and_sensors():
    repo = definitions.defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert keys == {
        "crm_cases",
        "submission_runs",
        "evidence_bundles",
        "crm_updates",
        "submission_report",
    }
    checks = {k.name for k in repo.asset_graph.asset_check_keys}
    assert checks == {
        "evidence_completeness",
        "release_gate",
        "soak",
        "error_budget",
        "queue_age",
        "zero_orphaned_jobs",
        "unknown_oems",
    }
    assert {s.name for s in repo.schedule_defs} == {f"nightly_{o}" for o in oem_keys()} | {
        "morning_report",
        "daily_evidence_purge",
    }
    assert {s.name for s in repo.sensor_defs} == {
        "new_crm_cases_sensor",
        "retries_due_sensor",
        "unwritten_outcomes_sensor",
        "lease_reaper_sensor",
        "run_failure_alert_sensor",
        "canceled_run_sensor",
        "run_now_requests_sensor",
        "webhook_dispatch_sensor",
        "run_finished_notification_sensor",
        "done_by_morning_sensor",
    }
    job = definitions.defs.resolve_job_def("submissions_nightly")
    assert job.partitions_def.get_partition_keys() == oem_keys()
    assert job.executor_def.name == "multiprocess"
    assert run_worker_batch.pool == BROWSER_POOL


def test_stage_and_prod_swap_the_whole_resource_set_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("SUBMISSIONS_DB_URL", "postgresql://app:s3cret@db.internal/submissions")
    monkeypatch.setenv("SUBMISSIONS_S3_BUCKET", "evidence")
    monkeypatch.setenv("SUBMISSIONS_PORTAL_URLS", '{"northwind": "https://nw.example"}')
    (tmp_path / "creds.json").write_text("{}")
    monkeypatch.setenv("SUBMISSIONS_CREDENTIALS_FILE", str(tmp_path / "creds.json"))
    for env in ("stage", "prod"):
        monkeypatch.setenv("SUBMISSIONS_ENV", env)
        resources = resource_set(load_settings())
        Definitions.validate_loadable(build_definitions(resources))
        artifacts = resources["artifacts"]
        assert isinstance(artifacts, S3ArtifactStoreResource) and artifacts.env == env
        # Secrets are passed as EnvVar, never as text Dagster would show in the UI.
        assert isinstance(resources["job_store"].db_url, EnvVar)
        assert isinstance(resources["credentials"].credentials_file, EnvVar)
        assert "s3cret" not in repr(resources)


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("SUBMISSIONS_HOME", str(tmp_path))
    for name in ("PLAYWRIGHT_BROWSERS_PATH", "SUBMISSIONS_DB_URL", "SUBMISSIONS_SENSOR_INTERVAL_S"):
        monkeypatch.setenv(name, "")
    settings = load_settings()
    # Not the working folder: the driver would link its ffmpeg into the checkout.
    assert settings.browsers_path == tmp_path / "pw-browsers"
    assert settings.database_url == f"sqlite:///{tmp_path / 'submissions.db'}"
    assert settings.sensor_interval_s is None
    monkeypatch.setenv("SUBMISSIONS_ENV", "prod")
    with pytest.raises(SettingsError, match="SUBMISSIONS_DB_URL"):
        resource_set(load_settings())


def test_an_unknown_environment_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SUBMISSIONS_ENV", "production")
    with pytest.raises(ValueError, match="'dev', 'stage' or 'prod'"):
        load_settings()


@pytest.mark.parametrize(
    ("unset", "named"),
    [
        ("SUBMISSIONS_DB_URL", "SUBMISSIONS_DB_URL"),
        ("SUBMISSIONS_PORTAL_URLS", "SUBMISSIONS_PORTAL_URLS"),
        ("SUBMISSIONS_S3_BUCKET", "SUBMISSIONS_S3_BUCKET"),
        ("SUBMISSIONS_CREDENTIALS_FILE", "SUBMISSIONS_CREDENTIALS_FILE"),
    ],
)
def test_outside_dev_a_missing_variable_stops_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, unset: str, named: str
):
    (tmp_path / "creds.json").write_text("{}")
    monkeypatch.setenv("SUBMISSIONS_ENV", "prod")
    monkeypatch.setenv("SUBMISSIONS_DB_URL", "postgresql://app:s3cret@db.internal/submissions")
    monkeypatch.setenv("SUBMISSIONS_S3_BUCKET", "evidence")
    monkeypatch.setenv("SUBMISSIONS_PORTAL_URLS", '{"northwind": "https://nw.example"}')
    monkeypatch.setenv("SUBMISSIONS_CREDENTIALS_FILE", str(tmp_path / "creds.json"))
    monkeypatch.delenv(unset)
    with pytest.raises(SettingsError, match=named) as raised:
        resource_set(load_settings())
    assert "s3cret" not in str(raised.value)


def test_a_worker_started_in_prod_without_its_portals_refuses_to_start(tmp_path: Path):
    env = {
        **os.environ,
        "SUBMISSIONS_ENV": "prod",
        "SUBMISSIONS_HOME": str(tmp_path),
        "SUBMISSIONS_DB_URL": f"sqlite:///{tmp_path / 'jobs.db'}",
        "SUBMISSIONS_S3_BUCKET": "evidence",
        "SUBMISSIONS_CREDENTIALS_FILE": str(tmp_path / "creds.json"),
    }
    (tmp_path / "creds.json").write_text("{}")
    env.pop("SUBMISSIONS_PORTAL_URLS", None)
    submissions = Path(sys.executable).parent / "submissions"
    done = subprocess.run(
        [str(submissions), "worker", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "SUBMISSIONS_PORTAL_URLS" in done.stderr + done.stdout


def test_the_embedded_instance_limits_one_run_per_oem_and_frees_slots(tmp_path: Path):
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    os.environ["DAGSTER_HOME"], old = str(tmp_path), os.environ.get("DAGSTER_HOME")
    try:
        instance = DagsterInstance.from_config(str(tmp_path))
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert limits == [
            {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
        ]
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 300
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert Path(instance.storage_directory()).is_relative_to(tmp_path)
        instance.event_log_storage.set_concurrency_slots(BROWSER_POOL, 2)
        assert instance.event_log_storage.get_concurrency_info(BROWSER_POOL).slot_count == 2
    finally:
        if old is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = old


def test_the_production_instance_stores_runs_in_postgresql(
    pg_url: str, resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    dagster_url = make_url(pg_url).set(drivername="postgresql+psycopg2")
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_url.render_as_string(hide_password=False))
    monkeypatch.setenv("DAGSTER_COMPUTE_LOG_BUCKET", "compute-logs")
    monkeypatch.setenv("DAGSTER_COMPUTE_LOG_PREFIX", "test/compute-logs")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    shutil.copy(ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.compute_log_manager).__name__ == "S3ComputeLogManager"
        instance.event_log_storage.set_concurrency_slots(BROWSER_POOL, 4)
        assert instance.event_log_storage.get_concurrency_info(BROWSER_POOL).slot_count == 4
        report = build_definitions(resources).resolve_job_def("submission_report_job")
        result = report.execute_in_process(instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id).job_name == "submission_report_job"
    finally:
        instance.dispose()


def test_outcome_metadata_ignores_missing_values_from_dataframe_columns():
    import pandas as pd

    from submissions_pipeline.assets.job_metrics import error_class_counts, reason_summary

    df = pd.DataFrame(
        {"error_class": ["site_flake", None, "adapter_bug"], "reason": [None, "x", "x"]}
    )
    counts = error_class_counts(df["error_class"])
    assert counts["failures_site_flake"] == 1 and counts["failures_adapter_bug"] == 1
    assert reason_summary(df["reason"]).value == "x: 2"

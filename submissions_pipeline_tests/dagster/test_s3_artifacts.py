"""The S3 artifact resource against moto's S3 server: TTL rule, bundles, lasting CRM links."""

from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from dagster import AssetSelection, DagsterInstance
from dagster_aws.s3 import S3Resource

from submissions_pipeline.assets import crm_updates, evidence_bundles
from submissions_pipeline.crm import CrmStatus, EmbeddedCrm
from submissions_pipeline.domain import SubmissionState
from submissions_pipeline.resource_sets import resource_set
from submissions_pipeline.resources import S3ArtifactStoreResource
from submissions_pipeline.settings import load_settings
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.console.conftest import console_deps_for, serve_console
from submissions_pipeline_tests.dagster.conftest import (
    arrange_proven_job,
    check_result,
    metadata_of,
    run_selection,
)
from submissions_pipeline_tests.servers import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    MotoServer,
    new_bucket_name,
)


@pytest.fixture
def s3_artifacts(moto_s3: MotoServer) -> S3ArtifactStoreResource:
    return S3ArtifactStoreResource(
        s3=S3Resource(
            endpoint_url=moto_s3.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        ),
        bucket=new_bucket_name(),
        env="stage",
        ttl_days=14,
        presign_expiry_s=3600,
    )


def test_the_resource_creates_the_bucket_with_the_envs_ttl_rule(
    s3_artifacts: S3ArtifactStoreResource,
):
    store = s3_artifacts.get_store()
    rules = store.client.get_bucket_lifecycle_configuration(Bucket=s3_artifacts.bucket)["Rules"]
    assert rules == [
        {
            "ID": "expire-stage-artifacts",
            "Filter": {"Prefix": "stage/"},
            "Status": "Enabled",
            "Expiration": {"Days": 14},
        }
    ]
    assert s3_artifacts.location() == f"s3://{s3_artifacts.bucket}/stage/"


def test_bundles_live_in_the_bucket_and_the_crm_link_opens_the_job_through_the_console(
    resources,
    s3_artifacts: S3ArtifactStoreResource,
    instance: DagsterInstance,
    store: JobStore,
    crm: EmbeddedCrm,
    tmp_path,
):
    artifacts = s3_artifacts.get_store()
    job = arrange_proven_job(store, crm, artifacts, 1)
    with closing(serve_console(console_deps_for(store, artifacts, tmp_path, crm))) as servers:
        console = next(servers)  # sets the store's console_url to the served address
        s3_artifacts_at_console = S3ArtifactStoreResource(
            s3=s3_artifacts.s3,
            bucket=s3_artifacts.bucket,
            env="stage",
            ttl_days=14,
            console_url=console.url,
        )
        result = run_selection(
            {**resources, "artifacts": s3_artifacts_at_console},
            instance,
            AssetSelection.assets(evidence_bundles, crm_updates),
        )

        assert result.success and check_result(result, "evidence_completeness").passed
        assert store.get(job.job_id).state is SubmissionState.CRM_UPDATED
        bundle_key = job.evidence["manifest_key"].replace("manifest.json", "bundle.json")
        assert bundle_key.startswith("stage/northwind/")
        assert b'"complete": true' in artifacts.get_bytes(bundle_key)

        # The CRM keeps the console's job page: no bucket, no signature, nothing that expires.
        case = crm.get_case(job.case_id)
        assert case.status is CrmStatus.SUBMITTED and case.reference == job.reference
        assert case.evidence_url == f"{console.url}/jobs/{job.job_id}"
        assert "X-Amz" not in case.evidence_url
        assert metadata_of(result, "crm_updates")[f"evidence_{job.case_id}"] == case.evidence_url

        # Anonymous: the login page. Signed in: the job page, and its screenshot is presigned
        # at the moment of the click (a link signed now, short-lived, that moto serves).
        anonymous = requests.get(case.evidence_url, timeout=5)
        assert "Sign in" in anonymous.text and job.case_id not in anonymous.text
        http = console.signed_in()
        page = http.get(case.evidence_url, timeout=5)
        assert page.status_code == 200 and job.case_id in page.text
        shot = next(i["key"] for i in job.evidence["items"] if i["name"] == "post_confirm.png")
        before = datetime.now(UTC).replace(microsecond=0)
        click = http.get(f"{console.url}/jobs/{job.job_id}/evidence/{shot}", allow_redirects=False)
        assert click.status_code == 302
        query = parse_qs(urlparse(click.headers["location"]).query)
        signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
        assert signed_at.replace(tzinfo=UTC) >= before and query["X-Amz-Expires"] == ["300"]
        assert requests.get(click.headers["location"], timeout=5).content.endswith(
            b"post_confirm.png"
        )

        # Eight days on, a presigned link made at write time would be dead; the CRM's link
        # still opens the page, and the evidence past its TTL reads as expired, manifest kept.
        later = datetime.now(UTC) + timedelta(days=8)
        console.deps.clock = lambda: later
        assert http.get(case.evidence_url, timeout=5).status_code == 200
        for item in job.evidence["items"]:
            artifacts.client.delete_object(Bucket=s3_artifacts.bucket, Key=item["key"])
        console.deps.clock = lambda: later + timedelta(days=14)
        expired = http.get(case.evidence_url, timeout=5).text
        assert "evidence expired" in expired and "post_confirm.png" in expired


SEVEN_DAYS_S = 7 * 24 * 3600


def _s3_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, moto_s3: MotoServer, tmp_path
) -> None:
    monkeypatch.setenv("SUBMISSIONS_ENV", "dev")
    monkeypatch.setenv("SUBMISSIONS_HOME", str(tmp_path))
    monkeypatch.setenv("SUBMISSIONS_ARTIFACT_STORE", "s3")
    monkeypatch.setenv("SUBMISSIONS_S3_BUCKET", new_bucket_name())
    monkeypatch.setenv("SUBMISSIONS_S3_ENDPOINT", moto_s3.endpoint_url)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.delenv("SUBMISSIONS_PRESIGN_EXPIRY_S", raising=False)


@pytest.mark.parametrize("configured", [None, 900, 36 * 3600, SEVEN_DAYS_S])
def test_the_link_lifetime_is_a_setting_signed_into_every_link(
    monkeypatch: pytest.MonkeyPatch, moto_s3: MotoServer, tmp_path, configured: int | None
):
    _s3_settings_from_the_environment(monkeypatch, moto_s3, tmp_path)
    if configured is not None:
        monkeypatch.setenv("SUBMISSIONS_PRESIGN_EXPIRY_S", str(configured))
    wanted = configured or SEVEN_DAYS_S  # the default is the longest S3 allows, as before
    artifacts = resource_set(load_settings())["artifacts"]
    assert isinstance(artifacts, S3ArtifactStoreResource)
    store = artifacts.get_store()
    key = store.artifact_key("northwind", "job42", 1, "post_confirm.png", when=date(2026, 11, 26))
    store.put_bytes(key, b"\x89PNG confirmation", "image/png")

    before = datetime.now(UTC).replace(microsecond=0)
    link = store.url(key)
    after = datetime.now(UTC)

    # moto does not enforce expiry: the signed lifetime is read back from the signed URL.
    query = parse_qs(urlparse(link).query)
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    lifetime = int(query["X-Amz-Expires"][0])
    assert lifetime == wanted and "X-Amz-Signature" in query
    assert before <= signed_at <= after
    expires_at = signed_at + timedelta(seconds=lifetime)
    assert before + timedelta(seconds=wanted) <= expires_at <= after + timedelta(seconds=wanted)
    assert requests.get(link, timeout=5).content == b"\x89PNG confirmation"


@pytest.mark.parametrize("configured", [SEVEN_DAYS_S + 1, 30 * 24 * 3600, 0])
def test_a_link_lifetime_s3_would_not_honour_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch, moto_s3: MotoServer, tmp_path, configured: int
):
    _s3_settings_from_the_environment(monkeypatch, moto_s3, tmp_path)
    monkeypatch.setenv("SUBMISSIONS_PRESIGN_EXPIRY_S", str(configured))
    with pytest.raises(ValueError, match="presign_expiry_s"):
        resource_set(load_settings())

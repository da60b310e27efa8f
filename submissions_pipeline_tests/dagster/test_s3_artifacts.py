"""The S3 artifact resource against moto's S3 server: TTL rule, bundles, presigned CRM links."""

from urllib.parse import parse_qs, urlparse

import pytest
from dagster import AssetSelection, DagsterInstance
from dagster_aws.s3 import S3Resource

from submissions_pipeline.assets import crm_updates, evidence_bundles
from submissions_pipeline.crm import CrmStatus, EmbeddedCrm
from submissions_pipeline.domain import SubmissionState
from submissions_pipeline.resources import S3ArtifactStoreResource
from submissions_pipeline.store import JobStore
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


def test_bundles_live_in_the_bucket_and_the_crm_gets_a_presigned_link(
    resources,
    s3_artifacts: S3ArtifactStoreResource,
    instance: DagsterInstance,
    store: JobStore,
    crm: EmbeddedCrm,
):
    artifacts = s3_artifacts.get_store()
    job = arrange_proven_job(store, crm, artifacts, 1)

    result = run_selection(
        {**resources, "artifacts": s3_artifacts},
        instance,
        AssetSelection.assets(evidence_bundles, crm_updates),
    )

    assert result.success and check_result(result, "evidence_completeness").passed
    assert store.get(job.job_id).state is SubmissionState.CRM_UPDATED
    bundle_key = job.evidence["manifest_key"].replace("manifest.json", "bundle.json")
    assert bundle_key.startswith("stage/northwind/")
    assert b'"complete": true' in artifacts.get_bytes(bundle_key)

    case = crm.get_case(job.case_id)
    assert case.status is CrmStatus.SUBMITTED and case.reference == job.reference
    link = urlparse(case.evidence_url)
    assert link.path.endswith("/post_confirm.png") and s3_artifacts.bucket in link.path
    query = parse_qs(link.query)
    assert query["X-Amz-Expires"] == ["3600"] and "X-Amz-Signature" in query
    assert metadata_of(result, "crm_updates")[f"evidence_{job.case_id}"] == case.evidence_url

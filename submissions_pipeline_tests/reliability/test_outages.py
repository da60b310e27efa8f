"""Infrastructure outages mid-batch are survived with nothing lost and nothing submitted twice."""

from __future__ import annotations

import time

from submissions_pipeline.artifacts import S3ArtifactStore
from submissions_pipeline.domain import ReasonCode, RetryPolicy
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.evidence import LOOKUP_SCREENSHOT
from submissions_pipeline.runner import run_batch
from submissions_pipeline_tests.factories import make_case, quick_config
from submissions_pipeline_tests.netfaults import ToggleProxy
from submissions_pipeline_tests.servers import ACCESS_KEY, REGION, SECRET_KEY


def test_s3_unreachable_for_a_while_delays_evidence_but_never_resubmits(
    runner_deps, sandbox, moto_s3
):
    proxy = ToggleProxy(moto_s3.port)
    try:
        store = S3ArtifactStore.from_endpoint(
            proxy.url,
            "evidence-outage",
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            connect_timeout_s=0.5,
            read_timeout_s=2,
            max_attempts=1,
        )
        store.ensure_bucket()
        runner_deps.artifacts = store
        runner_deps.store.policy = RetryPolicy(time_scale=0.002)
        job_id = runner_deps.store.enqueue(make_case(1, oem="aurora")).job_id

        proxy.down()
        run_batch(quick_config(), runner_deps)
        job = runner_deps.store.get(job_id)
        assert job.reason_code is ReasonCode.STORAGE_UNAVAILABLE
        assert job.state is S.NEEDS_RECONCILIATION and job.submit_attempted
        assert len(sandbox.ledger("aurora")) == 1

        proxy.up()
        time.sleep(max(0.0, (job.next_attempt_at - job.updated_at).total_seconds()) + 0.2)
        run_batch(quick_config(), runner_deps)
        job = runner_deps.store.get(job_id)
        (entry,) = sandbox.ledger("aurora")
        assert job.state is S.EVIDENCE_STORED and job.reference == entry.reference
        assert LOOKUP_SCREENSHOT in {i["name"] for i in job.evidence["items"]}
        for item in job.evidence["items"]:
            assert store.exists(item["key"])
    finally:
        proxy.close()

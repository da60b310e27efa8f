"""Pages that weigh what real portals weigh: a script bundle that must run first, web fonts,
large images and a slow third-party analytics script. The runner submits them all the same, and
the third-party hosts an OEM's settings list (`[browser] block_hosts`) are never even asked.
Real Chromium against the sandbox's `heavy_pages` knob."""

from __future__ import annotations

from sandbox.heavy import THIRD_PARTY_HOST, third_party_requests
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.oem import OemBrowser
from submissions_pipeline.runner import run_batch
from submissions_pipeline.runner.config import blocking_args
from submissions_pipeline_tests.factories import make_case, quick_config

OEM = "northwind"


def test_the_sandbox_oem_blocks_its_heavy_pages_third_party_and_submits_without_it(
    runner_deps, sandbox
):
    assert runner_deps.adapters[OEM].settings.browser.block_hosts == [THIRD_PARTY_HOST]
    sandbox.configure(OEM, heavy_pages=True, third_party_delay_ms=5_000)
    before = third_party_requests()
    job_ids = [runner_deps.store.enqueue(make_case(i, oem=OEM)).job_id for i in (1, 2)]

    outcomes = run_batch(quick_config(oem=OEM), runner_deps).outcomes

    assert {o.state for o in outcomes} == {S.EVIDENCE_STORED}
    assert sorted(e.case_id for e in sandbox.ledger(OEM)) == sorted(
        runner_deps.store.get(j).case_id for j in job_ids
    )
    assert third_party_requests() == before  # never resolved, so never asked


def test_without_the_block_the_slow_third_party_is_asked_on_every_page_and_waited_for_by_none(
    runner_deps, sandbox
):
    adapter = runner_deps.adapters[OEM]
    adapter.settings = adapter.settings.model_copy(update={"browser": OemBrowser()})
    sandbox.configure(OEM, heavy_pages=True, third_party_delay_ms=5_000)
    before = third_party_requests()
    runner_deps.store.enqueue(make_case(1, oem=OEM))

    (outcome,) = run_batch(quick_config(oem=OEM), runner_deps).outcomes

    assert outcome.state is S.EVIDENCE_STORED
    assert third_party_requests() - before >= 4  # one per page the job opened
    # Five seconds a page would be five pages x 5 s: the runner waits for the document only.
    assert outcome.seconds < 20


def test_blocked_hosts_become_one_resolver_rule_for_the_whole_browser():
    assert blocking_args([]) == []
    assert blocking_args(["b.example", "*.a.example", "b.example"]) == [
        "--host-resolver-rules=MAP *.a.example ~NOTFOUND, MAP b.example ~NOTFOUND"
    ]

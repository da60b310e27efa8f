"""A portal renames one button: the failure names the missing locator, the page's closest
elements and a JSON merge patch for the selector file; applied, the re-driven job succeeds."""

from __future__ import annotations

import json
import shutil

from submissions_pipeline.domain import ErrorClass, ReasonCode
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.drift import apply_merge_patch, merge_patch_between
from submissions_pipeline.runner import StepBudgets, run_batch
from submissions_pipeline_tests.factories import make_case, quick_config

RENAMED = "Submit claim to Aurora"


def test_a_renamed_button_gets_a_suggested_patch_that_fixes_the_redriven_job(
    runner_deps, sandbox, tmp_path
):
    # The adapter reads its selector file from a copy the test may patch.
    shipped = runner_deps.adapters["aurora"]
    folder = tmp_path / "adapters" / "aurora"
    shutil.copytree(shipped.folder, folder)
    runner_deps.adapters["aurora"] = type(shipped)(shipped.settings, folder)
    sandbox.configure("aurora", renamed_texts={"review.submit": RENAMED})
    job_id = runner_deps.store.enqueue(make_case(1, oem="aurora")).job_id

    fast = quick_config(oem="aurora", budgets=StepBudgets(action_timeout_ms=2000))
    (out,) = run_batch(fast, runner_deps).outcomes

    job = runner_deps.store.get(job_id)
    assert out.reason_code is ReasonCode.SELECTOR_NOT_FOUND
    assert out.error_class is ErrorClass.ADAPTER_BUG and out.alert
    assert job.state is S.DEAD_LETTERED and sandbox.ledger("aurora") == []
    patch = {"review": {"submit": {"name": RENAMED}}}
    assert f"suggested patch for aurora/selectors/v1.json: {json.dumps(patch)}" in out.message
    assert job.failure.message == out.message
    stored = job.failure.artifacts
    drift = json.loads(runner_deps.artifacts.get_bytes(stored["selector-drift.json"]))
    assert drift["path"] == "review.submit" and drift["suggested_patch"] == patch
    assert drift["missing"] == {"role": "button", "name": "Send to Aurora"}
    assert {"role": "button", "name": RENAMED} in drift["candidates"]
    aria = runner_deps.artifacts.get_bytes(stored["aria-snapshot.yaml"]).decode()
    assert f'button "{RENAMED}"' in aria

    # An engineer applies the suggestion and re-drives the dead-lettered job.
    path = folder / "selectors" / "v1.json"
    path.write_text(json.dumps(apply_merge_patch(json.loads(path.read_text()), patch), indent=2))
    runner_deps.adapters["aurora"] = type(shipped)(shipped.settings, folder)
    runner_deps.store.redrive(job_id, actor="person:eng", note="applied the suggested patch")
    (again,) = run_batch(quick_config(oem="aurora"), runner_deps).outcomes

    job = runner_deps.store.get(job_id)
    (entry,) = sandbox.ledger("aurora")
    assert again.state is S.EVIDENCE_STORED and job.reference == entry.reference
    assert job.attempt == 2


def test_a_merge_patch_replaces_arrays_whole_and_removes_with_null():
    old = {"steps": [{"a": {"label": "Odometer"}}], "keep": 1, "gone": 2}
    new = {"steps": [{"a": {"label": "Odometer (km)"}}], "keep": 1}
    patch = merge_patch_between(old, new)
    assert patch == {"steps": new["steps"], "gone": None}
    assert apply_merge_patch(old, patch) == new

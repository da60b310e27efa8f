"""Named crash points: kill this process at a chosen milestone, for the crash suite.

Off unless ``SUBMISSIONS_FAILPOINTS`` names the point (comma-separated). A SIGKILL is what a
preempted pod or an OOM kill does: no cleanup, no finally blocks, leases left behind.
"""

from __future__ import annotations

import os
import signal

from submissions_pipeline.settings import process_settings

#: Every point the code defines, in the order a job meets them.
POINTS = (
    "before_submit",  # pre-submit evidence taken, submit not clicked
    "after_submit_click",  # the portal has the submission, the store only `submit_clicked`
    "after_reference",  # reference parsed and the job `submitted`, no evidence stored
    "during_evidence_upload",  # some artifacts uploaded, the manifest not yet
    "during_crm_write",  # the CRM written, the job not yet `crm_updated`
    "during_webhook_delivery",  # a webhook acknowledged, the delivery not yet marked
)


def failpoint(name: str) -> None:
    """SIGKILL the current process if the failpoint `name` is enabled."""
    if name in process_settings().enabled_failpoints:
        os.kill(os.getpid(), signal.SIGKILL)

"""The pre-run canary op of `submission_runs[oem]`: one browser walks a waiting case up to the
submit click before any worker claims; an adapter that no longer matches the portal fails the
run here, with the broken selector and its suggested patch, and nothing is claimed."""

from pathlib import Path

from dagster import Config, Failure, In, MetadataValue, Nothing, OpExecutionContext, Out, op
from pydantic import Field

from submissions_pipeline.oems import oem_registry
from submissions_pipeline.resources import (
    ArtifactStoreResource,
    BrowserResource,
    CredentialsResource,
    JobStoreResource,
    PortalsResource,
    runner_deps,
)
from submissions_pipeline.runner.canary import run_canary

#: The pool every browser-driving op takes a slot of. Its size is the number of Chromium
#: processes the whole deployment runs at once: `dagster instance concurrency set browser 2`.
BROWSER_POOL = "browser"


class CanaryConfig(Config):
    """The canary's run config (launchpad: ops.submission_runs.ops.pre_run_canary.config)."""

    enabled: bool = Field(True, description="Walk a waiting case before the workers start.")
    action_timeout_ms: float = Field(
        10_000,
        gt=0,
        description="How long the walk waits for one element before calling it missing.",
    )


@op(
    ins={"crm_cases": In(Nothing)},
    out=Out(Nothing),
    pool=BROWSER_POOL,
    tags={"kind": "playwright"},
    description="Before any claim: walk one waiting case up to the submit click; a broken "
    "adapter stops the run with the missing selector and a suggested patch.",
)
def pre_run_canary(
    context: OpExecutionContext,
    config: CanaryConfig,
    job_store: JobStoreResource,
    artifacts: ArtifactStoreResource,
    credentials: CredentialsResource,
    portals: PortalsResource,
    browser: BrowserResource,
) -> None:
    oem = context.partition_key
    if not config.enabled:
        context.log.info(f"{oem}: canary disabled by run config")
        return
    deps = runner_deps(
        job_store=job_store,
        artifacts=artifacts,
        credentials=credentials,
        portals=portals,
        browser=browser,
        adapters={oem: oem_registry().load_adapter(oem)},
    )
    out_dir = Path(browser.home) / "canary" / oem / context.run.run_id
    result = run_canary(
        deps, oem, browser.batch_config(oem=oem).browser, out_dir, config.action_timeout_ms
    )
    summary = result.summary()
    if result.blocks_run:
        context.log.error(f"adapter bug: {summary}; no case was claimed")
        step = result.failed_step
        raise Failure(
            description=f"adapter bug: {summary}",
            metadata={
                "alert": MetadataValue.text("canary_failed"),
                "oem": MetadataValue.text(oem),
                "step": MetadataValue.text(step.step if step else ""),
                "screenshots": MetadataValue.path(str(out_dir)),
            },
            allow_retries=False,
        )
    if result.failed_step is not None:
        context.log.warning(f"{summary}; not an adapter bug, the workers go on")
    else:
        context.log.info(summary)

"""Running the console: its dependencies from the settings, and uvicorn on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from submissions_pipeline.console.app import ConsoleDeps, create_app
from submissions_pipeline.console.auth import Accounts, SessionSigner, session_key
from submissions_pipeline.oems import oem_registry
from submissions_pipeline.settings import Settings


def daemon_heartbeat(settings: Settings) -> datetime | None:
    """The newest heartbeat of Dagster's daemon in the instance, or None (none, or unreadable)."""
    try:
        from dagster import DagsterInstance

        instance = DagsterInstance.from_config(str(settings.dagster_instance_dir))
        beats = instance.get_daemon_heartbeats()
    except Exception:  # an absent or foreign instance is "no heartbeat", not a broken page
        return None
    times = [b.timestamp for b in beats.values()]
    return datetime.fromtimestamp(max(times), UTC) if times else None


@contextmanager
def console_deps(settings: Settings) -> Iterator[ConsoleDeps]:
    """The console's store, evidence, CRM, accounts and session key for this environment."""
    from submissions_pipeline.resource_sets import _artifacts, job_store_and_crm

    secret = settings.console_session_secret
    key = session_key(
        secret.get_secret_value() if secret else None, settings.home / "console-session.key"
    )
    registry = oem_registry(settings.adapters_dir)
    with job_store_and_crm(settings) as (store, crm):
        yield ConsoleDeps(
            store=store,
            artifacts=_artifacts(settings).get_store(),
            accounts=Accounts(settings.console_accounts_path),
            signer=SessionSigner(key, settings.console_session_ttl_s),
            crm=crm,
            oems={oem: registry.settings(oem) for oem in registry.oem_keys()},
            adapters_dir=settings.adapters_dir,
            secure_cookies=settings.console_url.startswith("https://"),
            daemon_heartbeat=lambda: daemon_heartbeat(settings),
        )


def serve(settings: Settings) -> None:
    """Serve the console until interrupted."""
    import uvicorn

    with console_deps(settings) as deps:
        uvicorn.run(
            create_app(deps),
            host=settings.console_host,
            port=settings.console_port,
            log_level="warning",
        )

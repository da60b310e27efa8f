"""`submissions api` and `submissions webhooks list|replay|dispatch`: the webhook commands."""

from __future__ import annotations

import time

import typer

from submissions_pipeline.settings import load_settings

webhooks = typer.Typer(help="The outbound webhook outbox: list, replay, dispatch.")


def serve_api(
    host: str | None = typer.Option(None, help="Interface (default SUBMISSIONS_API_HOST)."),
    port: int | None = typer.Option(None, help="Port (default SUBMISSIONS_API_PORT)."),
) -> None:
    """Serve the signed webhook API (run-now triggers, pushed cases) with uvicorn."""
    import uvicorn

    from submissions_pipeline.api.app import ApiClients, create_app
    from submissions_pipeline.oems import oem_registry
    from submissions_pipeline.resource_sets import job_store_and_crm

    settings = load_settings()
    clients = ApiClients.from_settings(settings)
    if not clients.hmac and not clients.bearer:
        typer.echo("no API clients: set SUBMISSIONS_API_CLIENTS (see README)", err=True)
    with job_store_and_crm(settings) as (store, crm):
        app = create_app(
            store,
            crm,
            oem_registry(settings.adapters_dir).oem_keys(),
            clients,
            rate_per_minute=settings.api_rate_per_minute,
            max_body_bytes=settings.api_max_body_bytes,
        )
        uvicorn.run(app, host=host or settings.api_host, port=port or settings.api_port)


def _dispatcher():  # type: ignore[no-untyped-def]
    from submissions_pipeline.api.dispatcher import WebhookDispatcher
    from submissions_pipeline.store import JobStore

    settings = load_settings()
    store = JobStore.from_url(settings.database_url)
    return store, WebhookDispatcher.from_settings(store, settings)


@webhooks.command("list")
def list_events(
    limit: int = typer.Option(20, help="How many of the newest events."),
    event_type: str | None = typer.Option(None, "--type", help="Only this event type."),
) -> None:
    """The newest events, with each subscriber's delivery status."""
    store, dispatcher = _dispatcher()
    try:
        for event in store.list_webhook_events(limit=limit, event_type=event_type):
            deliveries = store.list_deliveries(event.event_id)
            status = ", ".join(
                f"{d.subscription}: {d.status} ({d.attempts} tries)" for d in deliveries
            )
            typer.echo(
                f"{event.occurred_at:%Y-%m-%d %H:%M:%S}  {event.event_type:28} "
                f"{event.event_id}  {status or 'not fanned out yet'}"
            )
    finally:
        dispatcher.close()
        store.dispose()


@webhooks.command("replay")
def replay(
    event_id: str,
    subscription: list[str] = typer.Option(None, help="Only these subscribers (repeatable)."),
) -> None:
    """Deliver an event again, with the same id and payload, and a fresh retry budget."""
    store, dispatcher = _dispatcher()
    try:
        if store.get_webhook_event(event_id) is None:
            typer.echo(f"no event {event_id}", err=True)
            raise typer.Exit(1)
        made_due = store.replay_event(event_id, subscription or None)
        report = dispatcher.dispatch_once()
    finally:
        dispatcher.close()
        store.dispose()
    typer.echo(f"{made_due} delivery(ies) due again; delivered {report.delivered} now")


@webhooks.command("dispatch")
def dispatch(
    every: float = typer.Option(0, help="Seconds between passes; 0: one pass and exit."),
) -> None:
    """Deliver the outbox (what the Dagster sensor does), once or on a timer."""
    store, dispatcher = _dispatcher()
    try:
        while True:
            typer.echo(dispatcher.dispatch_once().model_dump_json())
            if every <= 0:
                return
            time.sleep(every)
    finally:
        dispatcher.close()
        store.dispose()

"""``rakuten-monitor``: the long-running metrics server, a one-shot HTML drift report, and the
alert webhook that turns Alertmanager's drift/quality alerts into retraining runs.

Exit codes: 0 success, 1 runtime failure (database unreachable, bundle without a reference,
a missing or unusable secret file of the webhook or of the notification log).

The server stack (uvicorn, FastAPI, httpx: about half a second to import) is imported by the two
commands that serve, so that ``report`` and ``--help`` start without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rakuten_core.errors import ConfigurationError
from rakuten_core.logs import configure_logging
from rakuten_monitor.report import write_report
from rakuten_monitor.service import Monitor
from rakuten_monitor.settings import MonitorSettings, get_settings
from rakuten_monitor.webhook_settings import WebhookSettings

app = typer.Typer(help="Drift and live quality over the prediction records.", no_args_is_help=True)


def _settings(host: str | None = None, port: int | None = None) -> MonitorSettings:
    settings = get_settings()
    updates = {"monitor_host": host, "monitor_port": port}
    return settings.model_copy(update={k: v for k, v in updates.items() if v is not None})


@app.command("serve-metrics")
def serve_metrics(
    host: Annotated[str | None, typer.Option(help="Bind address [RAKUTEN_MONITOR_HOST].")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port [RAKUTEN_MONITOR_PORT].")
    ] = None,
) -> None:
    """Serve /metrics, /health and /report; evaluate every RAKUTEN_MONITOR_INTERVAL_S."""
    import uvicorn  # noqa: PLC0415  (server stack)

    from rakuten_monitor.app import create_app  # noqa: PLC0415  (server stack)

    settings = _settings(host, port)
    configure_logging("monitor", log_dir=settings.log_dir, level=settings.log_level)
    try:
        app = create_app(settings)
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    uvicorn.run(
        app,
        host=settings.monitor_host,
        port=settings.monitor_port,
        log_config=None,
        access_log=False,
    )


@app.command()
def report(
    out: Annotated[Path, typer.Option(help="HTML file to write.", dir_okay=False)] = Path(
        "reports/drift.html"
    ),
) -> None:
    """Evaluate the current window once and write the HTML drift report to OUT."""
    settings = _settings()
    configure_logging("monitor", log_dir=settings.log_dir, level=settings.log_level)
    monitor = Monitor(settings)
    try:
        snapshot = monitor.run_once()
    finally:
        monitor.engine.dispose()
    if snapshot is None:
        typer.echo(f"error: cannot read the prediction records: {monitor.last_error}", err=True)
        raise typer.Exit(1)
    path = write_report(snapshot, out)
    typer.echo(f"drift report written to {path}")
    if snapshot.reference_error:
        typer.echo(f"error: no drift reference: {snapshot.reference_error}", err=True)
        raise typer.Exit(1)


@app.command("alert-webhook")
def alert_webhook(
    host: Annotated[
        str | None, typer.Option(help="Bind address [RAKUTEN_ALERT_WEBHOOK_HOST].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port [RAKUTEN_ALERT_WEBHOOK_PORT].")
    ] = None,
) -> None:
    """Receive Alertmanager's notifications; trigger the retraining DAG on drift/quality."""
    import uvicorn  # noqa: PLC0415  (server stack)

    from rakuten_monitor.alert_webhook import create_webhook_app  # noqa: PLC0415  (server stack)

    settings = WebhookSettings()
    updates = {"alert_webhook_host": host, "alert_webhook_port": port}
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    configure_logging("alert-webhook", log_dir=settings.log_dir, level=settings.log_level)
    try:
        webhook = create_webhook_app(settings)
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    uvicorn.run(
        webhook,
        host=settings.alert_webhook_host,
        port=settings.alert_webhook_port,
        log_config=None,
        access_log=False,
    )

"""``rakuten-serve``: run the API, manage users, migrate the database.

Exit codes: 0 success, 1 runtime failure (database unreachable, unsafe settings), 2 bad input.
Passwords are read from a hidden prompt or from stdin (``--password-stdin``), never from the
command line, where other users could read them in the process list.

The server stack (uvicorn, prometheus_client's multiprocess mode: about 0.2 s to import) and
Alembic (:mod:`rakuten_serve.db.migrate`: about half a second) are imported by the commands that
use them, so that the ``users`` commands start without them.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from rakuten_core.errors import ConfigurationError, InvalidInputError
from rakuten_core.logs import configure_logging
from rakuten_serve.db.engine import build_engine, session_factory
from rakuten_serve.reload_board import prepare_run_dir
from rakuten_serve.settings import ServeSettings, get_settings
from rakuten_serve.users import (
    SCOPES,
    UserInfo,
    change_scopes,
    create_user,
    list_users,
    set_disabled,
)

app = typer.Typer(help="Rakuten product classification API.", no_args_is_help=True)
users_app = typer.Typer(
    help="Create, disable, enable and list API users; grant and revoke their scopes.",
    no_args_is_help=True,
)
db_app = typer.Typer(help="Database migrations (Alembic).", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(db_app, name="db")


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _sessions(settings: ServeSettings) -> sessionmaker[Session]:
    return session_factory(build_engine(settings.database_url))


@app.command()
def run(
    host: Annotated[str | None, typer.Option(help="Bind address [RAKUTEN_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [RAKUTEN_PORT].")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes [RAKUTEN_WORKERS; 0 or unset: one per core]."),
    ] = None,
    migrate: Annotated[bool, typer.Option(help="Run `db upgrade` before starting.")] = True,
    proxy_headers: Annotated[
        bool, typer.Option(help="Trust X-Forwarded-For from FORWARDED_ALLOW_IPS.")
    ] = False,
) -> None:
    """Start the API with uvicorn (N worker processes with --workers N)."""
    import uvicorn  # noqa: PLC0415  (server stack)

    from rakuten_serve.multiproc import (  # noqa: PLC0415  (server stack)
        MULTIPROC_ENV,
        multiprocess_metrics_dir,
        run_workers,
    )

    settings = get_settings()
    configure_logging("serve", log_dir=settings.log_dir, level=settings.log_level)
    try:
        settings.signing_key()
    except ConfigurationError as exc:
        raise _fail(str(exc), 1) from None
    n_workers = workers or settings.workers or len(os.sched_getaffinity(0))
    if os.environ.get("RAKUTEN_JWT_SECRET") is None and settings.environment == "development":
        # Workers are separate processes: share one development secret between them.
        os.environ["RAKUTEN_JWT_SECRET"] = (
            settings.jwt_secret.get_secret_value()
            if (settings.jwt_secret)
            else secrets.token_urlsafe(48)
        )
    # The workers size the model's thread pool by it (rakuten_serve.asgi): spawned workers read
    # the environment, a single in-process one these cached settings.
    os.environ["RAKUTEN_WORKERS"] = str(n_workers)
    settings.workers = n_workers
    if migrate:
        from rakuten_serve.db.migrate import upgrade  # noqa: PLC0415  (Alembic)

        try:
            upgrade(settings.database_url)
        except SQLAlchemyError as exc:
            raise _fail(f"database migration failed: {exc}", 1) from None
    options: dict[str, Any] = {
        "factory": True,
        "host": host or settings.host,
        "port": port if port is not None else settings.port,
        "workers": n_workers,
        "log_config": None,
        "access_log": False,
        "proxy_headers": proxy_headers,
        "timeout_graceful_shutdown": 15,
        # The supervisor kills a worker that misses a 5 s health ping (uvicorn's default);
        # loading and warming the model hold the GIL for long stretches, so on a busy host
        # healthy workers were killed mid-load over and over (seen with 4 workers on 2 cores,
        # with TensorFlow; the ONNX runtime loads faster, the margin stays).
        "timeout_worker_healthcheck": 60,
    }
    # the reload board the workers share (os.environ: the workers inherit it)
    settings.run_dir = prepare_run_dir(settings.run_dir)
    multiprocess = settings.metrics_enabled and (
        n_workers > 1 or bool(os.environ.get(MULTIPROC_ENV))
    )
    if not multiprocess:
        uvicorn.run("rakuten_serve.asgi:build", **options)
        return
    with multiprocess_metrics_dir() as metrics_dir:
        if n_workers == 1:
            uvicorn.run("rakuten_serve.asgi:build", **options)
        else:
            run_workers(uvicorn.Config("rakuten_serve.asgi:build", **options), metrics_dir)


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="Login name.")],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", "-s", help=f"Repeatable; one of {sorted(SCOPES)}."),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from stdin (first line) instead of a prompt.")
    ] = False,
) -> None:
    """Create a user (default scope: predict; add -s label to let them give feedback)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(_sessions(get_settings()), username, password, scope or ["predict"])
    except InvalidInputError as exc:
        raise _fail(str(exc), 2) from None
    except SQLAlchemyError as exc:
        raise _fail(
            f"database error ({type(exc).__name__}); did you run `db upgrade`?", 1
        ) from None
    typer.echo(f"created {user.username} with scopes: {' '.join(user.scopes)}")


def _change_user(change: Callable[[sessionmaker[Session]], UserInfo]) -> UserInfo:
    """Apply ``change`` to the user database; its refusals and outages become exit codes."""
    try:
        return change(_sessions(get_settings()))
    except InvalidInputError as exc:
        raise _fail(str(exc), 2) from None
    except SQLAlchemyError as exc:
        raise _fail(f"database error ({type(exc).__name__})", 1) from None


def _set_disabled(username: str, disabled: bool) -> None:
    user = _change_user(lambda sessions: set_disabled(sessions, username, disabled=disabled))
    typer.echo(f"{user.username}: {'disabled' if user.disabled else 'enabled'}")


@users_app.command("disable")
def users_disable(username: str) -> None:
    """Disable a user: their tokens stop working within RAKUTEN_USER_CACHE_SECONDS."""
    _set_disabled(username, True)


@users_app.command("enable")
def users_enable(username: str) -> None:
    """Enable a disabled user again."""
    _set_disabled(username, False)


_SCOPE_LIST = Annotated[
    list[str],
    typer.Option("--scope", "-s", help=f"Repeatable; one of {sorted(SCOPES)}."),
]


def _change_scopes(username: str, *, grant: list[str], revoke: list[str]) -> None:
    user = _change_user(
        lambda sessions: change_scopes(sessions, username, grant=grant, revoke=revoke)
    )
    typer.echo(f"{user.username}: scopes {' '.join(user.scopes) or '(none)'}")


@users_app.command("grant")
def users_grant(username: str, scope: _SCOPE_LIST) -> None:
    """Add scopes to a user (e.g. -s label); the user needs a new token to use them."""
    _change_scopes(username, grant=scope, revoke=[])


@users_app.command("revoke")
def users_revoke(username: str, scope: _SCOPE_LIST) -> None:
    """Remove scopes from a user; their tokens lose them within RAKUTEN_USER_CACHE_SECONDS."""
    _change_scopes(username, grant=[], revoke=scope)


@users_app.command("list")
def users_list() -> None:
    """List users with their scopes and state."""
    try:
        users = list_users(_sessions(get_settings()))
    except SQLAlchemyError as exc:
        raise _fail(f"database error ({type(exc).__name__})", 1) from None
    for user in users:
        state = "disabled" if user.disabled else "enabled"
        typer.echo(f"{user.username}\t{' '.join(user.scopes)}\t{state}")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the Alembic migrations to RAKUTEN_DATABASE_URL."""
    from rakuten_serve.db.migrate import current_revision, upgrade  # noqa: PLC0415  (Alembic)

    settings = get_settings()
    try:
        upgrade(settings.database_url, revision)
    except SQLAlchemyError as exc:
        raise _fail(f"migration failed: {exc}", 1) from None
    typer.echo(f"database at revision {current_revision(settings.database_url)}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's Alembic revision."""
    from rakuten_serve.db.migrate import current_revision  # noqa: PLC0415  (Alembic)

    typer.echo(current_revision(get_settings().database_url) or "(empty)")

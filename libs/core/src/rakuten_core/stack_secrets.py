"""The compose stack's secrets: generated once, checked at every start, handed out per service.

The one-shot ``secrets`` service runs ``rakuten-secrets ensure`` before anything else starts. It
reads the catalogue (``docker/secrets.toml``: each secret, its minimum length, and the files
made from it), keeps one master copy of every secret in the store folder (root only), generates
the ones missing, refuses any that fails :func:`rakuten_core.secrets.check_secret`, and writes
each service's files into that service's own volume with the owner and mode the catalogue gives,
so a service mounts only its own secrets and can read nothing else. Rewriting the files at every
start is what makes ``rotate`` and ``set`` take effect on the next ``up``.

On Kubernetes the same command fills a folder per Secret from ``deploy/helm/secrets.toml``
(``deploy/helm/create-secrets.sh``); the host names that differ per cluster come from the
environment through ``{env:NAME}``.
"""

from __future__ import annotations

import base64
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, NoReturn

import bcrypt
import typer
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rakuten_core.errors import ConfigurationError
from rakuten_core.secrets import SECRET_ALPHABET, check_secret, generate

STORE = "store"
# What a template may say about its secret: the value itself, its bcrypt hash (the web
# configuration of Prometheus, Alertmanager and the Pushgateway keeps hashes only), an HTTP
# basic-auth header value for a user (what a health check sends), or an environment variable
# (never a secret: a host name that differs per cluster, in a URL or a configuration file).
_PLACEHOLDER = re.compile(r"\{(value|bcrypt|basic:[A-Za-z0-9_-]+|env:[A-Za-z_][A-Za-z0-9_]*)\}")
_VARIABLE = re.compile(r"\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def _unset(variable: str) -> ConfigurationError:
    return ConfigurationError(f"environment variable {variable} is not set (or empty)")


def render(template: str, raw: str, *, environ: Mapping[str, str] | None = None) -> str:
    """``template`` with each placeholder replaced from the secret ``raw``.

    Args:
        template: The file's content with its placeholders.
        raw: The secret.
        environ: Where ``{env:NAME}`` is read; ``os.environ`` by default.

    Raises:
        ConfigurationError: an ``{env:NAME}`` variable is unset or empty (named; the secret is
            never part of the message).
    """
    variables = os.environ if environ is None else environ

    def one(match: re.Match[str]) -> str:
        kind = match.group(1)
        if kind == "value":
            return raw
        if kind == "bcrypt":
            return bcrypt.hashpw(raw.encode(), bcrypt.gensalt(rounds=10)).decode()
        if kind.startswith("env:"):
            name = kind.removeprefix("env:")
            if not variables.get(name):
                raise _unset(name)
            return variables[name]
        user = kind.removeprefix("basic:")
        return base64.b64encode(f"{user}:{raw}".encode()).decode()

    return _PLACEHOLDER.sub(one, template)


class SecretFile(BaseModel):
    """One file made from a secret, in the volume of the service that reads it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="<volume folder>/<file name>, under the stack's secrets root")
    template: str = Field(
        default="{value}",
        description="File content: {value} is the secret, {bcrypt} its bcrypt hash, "
        "{basic:USER} the basic-auth header value of USER with it, {env:NAME} the environment "
        "variable NAME (not a secret: a host name)",
    )
    owner: int | str = Field(default="app", description="uid, or 'app' for the services' uid")
    group: int | str | None = Field(default=None, description="gid; the owner's by default")
    mode: str = Field(default="0400", pattern=r"^0[0-7]{3}$")

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        parts = Path(value).parts
        if len(parts) != 2 or ".." in parts or parts[0] == STORE:
            raise ValueError(f"{value!r}: expected <volume folder>/<file name>")
        return value


class SecretSpec(BaseModel):
    """A secret of the stack: how long it must be and where it goes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    min_chars: int = Field(default=32, ge=16)
    files: tuple[SecretFile, ...]


class Catalogue(BaseModel):
    """Every secret of the stack (``docker/secrets.toml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secrets: dict[str, SecretSpec]

    @classmethod
    def load(cls, path: Path) -> Catalogue:
        with path.open("rb") as handle:
            return cls.model_validate(tomllib.load(handle))

    def check_environment(self) -> None:
        """Refuse an unset ``{env:NAME}`` before anything is written (or a secret replaced)."""
        for name, spec in self.secrets.items():
            for target in spec.files:
                for variable in _VARIABLE.findall(target.template):
                    if not os.environ.get(variable):
                        where = f"{target.path} (secret {name})"
                        raise ConfigurationError(f"{where}: {_unset(variable)}")

    def spec(self, name: str) -> SecretSpec:
        if name not in self.secrets:
            raise ConfigurationError(f"unknown secret {name!r}; known: {sorted(self.secrets)}")
        return self.secrets[name]


def _uid(value: int | str, app_uid: int) -> int:
    return app_uid if value == "app" else int(value)


def _write(path: Path, content: str, *, uid: int, gid: int, mode: int) -> None:
    """Write ``content`` so that only ``uid`` (and ``gid`` where the mode says) can read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.chmod(temporary, mode)  # before chown: once given away, root needs CAP_FOWNER to chmod
    if (uid, gid) != (os.geteuid(), os.getegid()):
        os.chown(temporary, uid, gid)
    os.replace(temporary, path)


def _check(name: str, raw: str, spec: SecretSpec) -> str:
    check_secret(raw, name=name, min_chars=spec.min_chars)
    if not SECRET_ALPHABET.fullmatch(raw):
        raise ConfigurationError(f"{name} may hold only letters, digits, '-' and '_'")
    return raw


def store_secret(root: Path, name: str, raw: str) -> None:
    """Keep ``raw`` as the master copy of ``name`` (root-only file in the store folder)."""
    _write(root / STORE / name, raw, uid=os.geteuid(), gid=os.getegid(), mode=0o400)


def ensure(catalogue: Catalogue, root: Path, *, app_uid: int) -> list[str]:
    """Generate the missing secrets, check every one, write every service's files.

    Returns:
        The names of the secrets generated by this call.

    Raises:
        ConfigurationError: a stored secret is unusable (named, its value never shown), or an
            environment variable a template reads is unset (nothing written then).
    """
    catalogue.check_environment()
    generated = []
    for name, spec in catalogue.secrets.items():
        master = root / STORE / name
        if not master.exists():
            store_secret(root, name, generate())
            generated.append(name)
        raw = _check(name, master.read_text(encoding="utf-8").strip(), spec)
        for target in spec.files:
            uid = _uid(target.owner, app_uid)
            gid = uid if target.group is None else _uid(target.group, app_uid)
            content = render(target.template, raw)
            _write(root / target.path, content, uid=uid, gid=gid, mode=int(target.mode, 8))
    return generated


app = typer.Typer(
    help="The compose stack's secrets: generate, check, rotate (docs/security.md).",
    no_args_is_help=True,
    add_completion=False,
)
CatalogueOption = Annotated[
    Path, typer.Option("--catalogue", exists=True, dir_okay=False, help="The secrets catalogue.")
]
RootOption = Annotated[Path, typer.Option("--root", help="Folder holding every secret volume.")]
AppUidOption = Annotated[int, typer.Option("--app-uid", help="uid of the project's images.")]


def _fail(error: ConfigurationError) -> NoReturn:
    typer.echo(f"rakuten-secrets: {error}", err=True)
    raise typer.Exit(2)


@app.command("ensure")
def ensure_command(catalogue: CatalogueOption, root: RootOption, app_uid: AppUidOption) -> None:
    """Generate missing secrets, check them all, write each service's files."""
    try:
        generated = ensure(Catalogue.load(catalogue), root, app_uid=app_uid)
    except ConfigurationError as error:
        _fail(error)
    typer.echo(f"secrets ready ({len(generated)} generated: {', '.join(generated) or 'none'})")


def _replace(name: str, raw: str | None, catalogue: Path, root: Path, app_uid: int) -> None:
    """Store ``raw`` (checked) or, when None, a new random value as ``name``; rewrite the files."""
    try:
        loaded = Catalogue.load(catalogue)
        spec = loaded.spec(name)
        loaded.check_environment()
        store_secret(root, name, generate() if raw is None else _check(name, raw, spec))
        ensure(loaded, root, app_uid=app_uid)
    except ConfigurationError as error:
        _fail(error)


@app.command("rotate")
def rotate_command(
    name: Annotated[str, typer.Argument(help="The secret to replace by a new random one.")],
    catalogue: CatalogueOption,
    root: RootOption,
    app_uid: AppUidOption,
) -> None:
    """Replace one secret by a new random value and rewrite its files."""
    _replace(name, None, catalogue, root, app_uid)
    typer.echo(f"{name} rotated: restart the services that read it (docs/security.md)")


@app.command("set")
def set_command(
    name: Annotated[str, typer.Argument(help="The secret to set from standard input.")],
    catalogue: CatalogueOption,
    root: RootOption,
    app_uid: AppUidOption,
) -> None:
    """Set one secret from standard input (one line), checked like a generated one."""
    _replace(name, sys.stdin.readline().strip(), catalogue, root, app_uid)
    typer.echo(f"{name} set: restart the services that read it (docs/security.md)")


@app.command("check")
def check_command(catalogue: CatalogueOption, root: RootOption) -> None:
    """Check every stored secret without changing anything (exit 2 naming the first bad one)."""
    try:
        loaded = Catalogue.load(catalogue)
        for name, spec in loaded.secrets.items():
            master = root / STORE / name
            if not master.exists():
                raise ConfigurationError(f"{name} has not been generated yet")
            _check(name, master.read_text(encoding="utf-8").strip(), spec)
    except ConfigurationError as error:
        _fail(error)
    typer.echo(f"{len(loaded.secrets)} secrets checked")

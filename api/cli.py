"""The ``concord`` command: run the hub, manage API keys.

Why the CLI starts the embedded servers (and not the composition root): deciding *where*
PostgreSQL and NATS come from is a deployment choice. ``open_runtime`` only ever connects to
URLs; ``concord serve`` fills in missing URLs by starting private servers from the PyPI wheels
under the data folder, so one command runs the whole hub on a fresh machine and stops them
again on exit.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from pydantic import ValidationError

from adapters.settings import Settings
from api.cli_bi_role import register as register_bi_role_commands
from api.cli_close import register as register_close_commands
from api.cli_demo import register as register_demo_command
from api.cli_exceptions import register as register_exception_commands
from api.cli_inbound import register as register_inbound_commands
from api.cli_nats import register as register_nats_commands
from api.cli_process import register as register_process_commands
from api.cli_projections import register as register_projection_commands
from api.cli_sandbox import register as register_sandbox_commands
from api.cli_subscribers import register as register_subscriber_commands

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

app = typer.Typer(
    name="concord",
    help="Concord: event-sourced canonical data hub for ERP, CRM and billing.",
    no_args_is_help=True,
    add_completion=False,
)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data folder (default: $CONCORD_DATA_DIR or ./.concord)."),
]


def _fail(message: str, fix: str | None = None) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    if fix:
        typer.secho(f"  fix: {fix}", fg=typer.colors.YELLOW, err=True)
    return typer.Exit(1)


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment with command-line options on top."""
    try:
        settings = Settings()
    except ValidationError as invalid:
        raise _fail(
            f"invalid CONCORD_* settings:\n{invalid}", "correct or unset the variables named above"
        ) from None
    given = {k: v for k, v in overrides.items() if v is not None}
    return settings.model_copy(update=given) if given else settings


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _label(name: str) -> str:
    return typer.style(f"{name:<12}", fg=typer.colors.BRIGHT_BLACK)


#: The background services ``concord serve`` runs beside the API (``--without`` names some
#: that run in processes of their own: ``concord relay``, ``subscribe``, ``projections run``,
#: ``process run``).
SERVICES = frozenset({"relay", "subscribers", "projections", "process"})


def start_hub(
    stack: contextlib.ExitStack[Any], settings: Settings, skipped: set[str] | frozenset[str]
) -> tuple[Settings, Runtime]:
    """The hub without its API: embedded PostgreSQL/NATS for missing URLs, the runtime and
    the background services not in ``skipped``, all closed by ``stack``. Shared by
    ``concord serve`` and ``concord demo`` so both run the same hub."""
    from adapters.background import background
    from adapters.bootstrap import open_runtime
    from adapters.embedded import embedded_nats, embedded_postgres
    from adapters.nats.identities import Scope
    from adapters.nats.relay import Relay
    from adapters.nats.runner import subscribers_service
    from adapters.process.service import process_service
    from adapters.projections.service import projections_service
    from adapters.telemetry import configure_metrics, configure_tracing, shutdown_tracing

    folder = Path(settings.data_dir).expanduser().resolve()
    urls: dict[str, Any] = {"data_dir": folder}
    if not settings.database_url:
        typer.secho(
            f"Starting embedded PostgreSQL in {folder / 'postgres'} ...", fg=typer.colors.CYAN
        )
        urls["database_url"] = stack.enter_context(embedded_postgres(folder))
    if not settings.nats_url:
        typer.secho(f"Starting embedded NATS in {folder / 'nats'} ...", fg=typer.colors.CYAN)
        scope = Scope(settings.nats_stream, settings.nats_subject_prefix)
        urls["nats_url"] = stack.enter_context(embedded_nats(folder, scope=scope))
        urls.update(_embedded_identities(folder))
    settings = settings.model_copy(update=urls)
    configure_tracing(settings)
    configure_metrics(settings)
    stack.callback(shutdown_tracing)
    runtime = open_runtime(settings)
    stack.callback(runtime.close)
    # The outbox relay publishes every committed event to NATS while the API runs;
    # the subscribers push them to the targets configured in CONCORD_TARGETS.
    if "relay" not in skipped:
        relay = Relay(settings, connections=runtime.connections)
        stack.enter_context(background("concord-relay", relay.run))
    if "subscribers" not in skipped:
        stack.enter_context(background("concord-subscribers", subscribers_service(runtime)))
    # The read models (projections) follow the stores beside them.
    if "projections" not in skipped:
        stack.enter_context(
            background("concord-projections", projections_service(settings, runtime.connections))
        )
    # The quote-to-cash process manager follows the stores and drives each deal.
    if "process" not in skipped:
        stack.enter_context(background("concord-q2c", process_service(runtime)))
    return settings, runtime


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    data_dir: DataDir = None,
    workers: Annotated[
        int,
        typer.Option(min=1, help="API worker processes (relay and subscribers run once)."),
    ] = 1,
    without: Annotated[
        str,
        typer.Option(
            help="Background services this process does not run (they run elsewhere): "
            "comma-separated relay, subscribers, projections, process."
        ),
    ] = "",
) -> None:
    """Run the API; start embedded PostgreSQL/NATS when no URLs are configured."""
    # Imported here so `concord keys ...` and `--help` stay fast and need no server stack.
    import uvicorn

    from adapters.bootstrap import ConfigurationError
    from adapters.embedded import EmbeddedServerError
    from adapters.gc_tuning import tune_for_serving
    from adapters.keys import KeyRingError
    from api.app import create_app

    settings = _settings(host=host, port=port, data_dir=data_dir)
    skipped = {part.strip() for part in without.split(",") if part.strip()}
    unknown = skipped - SERVICES
    if unknown:
        raise _fail(
            f"--without names {', '.join(sorted(unknown))}",
            f"choose among {', '.join(sorted(SERVICES))}",
        )
    if not _port_free(settings.host, settings.port):
        raise _fail(
            f"{settings.host}:{settings.port} is already in use",
            f"pass --port {settings.port + 1} (or set CONCORD_PORT), or stop the other server",
        )
    try:
        with contextlib.ExitStack() as stack:
            settings, runtime = start_hub(stack, settings, skipped)
            new_key = None
            if runtime.keys.is_empty():
                new_key = runtime.keys.create("admin", "admin", ["read", "write", "admin"])
            _banner(settings, new_key)
            # uvicorn re-raises the signal it stopped on; for SIGTERM (docker stop, systemd)
            # the default action would kill us before the embedded servers are stopped.
            signal.signal(signal.SIGTERM, _stop_on_sigterm)
            if workers == 1:
                application = create_app(runtime)
                tune_for_serving()
                # No lifespan: this process owns the runtime (the ExitStack closes it), and
                # uvicorn's lifespan task would print a traceback on Ctrl-C.
                uvicorn.run(
                    application,
                    host=settings.host,
                    port=settings.port,
                    log_level="info",
                    lifespan="off",
                )
            else:
                # Worker processes build their own runtimes from the environment.
                os.environ.update(_environment(settings))
                uvicorn.run(
                    "api.server:app",
                    factory=True,
                    workers=workers,
                    host=settings.host,
                    port=settings.port,
                    log_level="info",
                )
    except KeyboardInterrupt:
        pass
    except EmbeddedServerError as failed:
        raise _fail(
            str(failed), "set CONCORD_DATABASE_URL / CONCORD_NATS_URL to use servers of your own"
        ) from None
    except (ConfigurationError, KeyRingError, ValueError) as failed:
        raise _fail(str(failed)) from None
    typer.secho("Concord stopped; embedded servers shut down.", fg=typer.colors.CYAN)


@app.command()
def relay(
    once: Annotated[
        bool, typer.Option("--once", help="Publish what is committed now, then exit.")
    ] = False,
) -> None:
    """Publish every committed event to NATS JetStream (exactly once; resumable)."""
    import asyncio
    import logging
    import signal

    from adapters.nats.relay import Relay, RelayBusy

    settings = _settings()
    if not settings.database_url or not settings.nats_url:
        raise _fail(
            "the relay needs a database and a NATS server",
            "set CONCORD_DATABASE_URL and CONCORD_NATS_URL (`concord serve` runs a "
            "relay of its own with the embedded servers)",
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    worker = Relay(settings)
    stream = f"{settings.nats_stream} ({settings.nats_subject_prefix}.v1.>)"
    if once:
        try:
            count = asyncio.run(worker.catch_up())
        except RelayBusy as busy:
            raise _fail(
                str(busy), "nothing to do: the running relay keeps the stream current"
            ) from None

        typer.secho(f"Published {count:,} event(s) to {stream}.", fg=typer.colors.GREEN)
        if worker.stuck:
            for store, reason in sorted(worker.stuck.items()):
                typer.secho(f"  store {store} is STUCK: {reason}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        return

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(worker.run(stop))
        typer.secho(f"Relaying to {stream}; Ctrl-C stops.", fg=typer.colors.CYAN)
        shown = -1
        stuck: dict[str, str] = {}
        while not task.done():
            await asyncio.wait({task}, timeout=2.0)
            if worker.stuck != stuck:
                stuck = dict(worker.stuck)
                for store, reason in sorted(stuck.items()):
                    typer.secho(f"  store {store} is STUCK: {reason}", fg=typer.colors.RED)
            if worker.stats.published != shown:
                shown = worker.stats.published
                positions = ", ".join(f"{k} {v}" for k, v in sorted(worker.stats.positions.items()))
                typer.echo(f"  published {shown:,} this run | positions: {positions}")
        await task

    asyncio.run(run())
    typer.secho("Relay stopped.", fg=typer.colors.CYAN)


def _embedded_identities(folder: Path) -> dict[str, str]:
    """Settings that make Concord connect to its embedded NATS with the generated relay
    and subscriber identities (files under ``<data>/nats/auth``)."""
    from adapters.embedded import nats_identities

    identities = nats_identities(folder)
    relay, subscriber = identities.credential("relay"), identities.credential("subscriber")
    assert relay is not None and subscriber is not None  # generated by embedded_nats
    return {
        "nats_relay_user": relay.user,
        "nats_relay_password": relay.password,
        "nats_subscriber_user": subscriber.user,
        "nats_subscriber_password": subscriber.password,
    }


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    """Treat SIGTERM like Ctrl-C: unwind, so every started server is stopped in order."""
    raise KeyboardInterrupt


def _environment(settings: Settings) -> dict[str, str]:
    """``CONCORD_*`` variables that reproduce ``settings`` in a worker process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        key = "CONCORD_SCHEMA" if name == "schema_name" else f"CONCORD_{name.upper()}"
        env[key] = str(value)
    return env


def _banner(settings: Settings, new_key: str | None) -> None:
    base = f"http://{settings.host}:{settings.port}"
    typer.echo()
    typer.secho("Concord is starting", fg=typer.colors.GREEN, bold=True)
    typer.echo(f"  {_label('API')}{base}/v1")
    typer.echo(f"  {_label('Docs')}{base}/docs")
    typer.echo(f"  {_label('Data folder')}{Path(settings.data_dir).resolve()}")
    typer.echo(f"  {_label('PostgreSQL')}{_redact(settings.database_url)}")
    typer.echo(f"  {_label('NATS')}{_redact(settings.nats_url)}")
    if settings.nats_relay_user or settings.nats_subscriber_user:
        typer.echo(
            f"  {_label('NATS users')}relay {settings.nats_relay_user or '-'}, "
            f"subscribers {settings.nats_subscriber_user or '-'} "
            "(consume-only users for other systems: concord nats creds create --name <system>)"
        )
    _targets(settings)
    if new_key is not None:
        typer.echo()
        typer.secho(
            "No API keys existed, so an admin key was created. It is shown ONCE;",
            fg=typer.colors.YELLOW,
            bold=True,
        )
        typer.secho("only its hash is stored. Copy it now:", fg=typer.colors.YELLOW, bold=True)
        typer.echo()
        typer.secho(f"    {new_key}", fg=typer.colors.BRIGHT_WHITE, bold=True)
        typer.echo()
        typer.echo(f'  Use it as: curl -H "Authorization: Bearer <key>" {base}/v1/ownership')
        typer.echo("  Keys for each system: concord keys create --system crm")
    typer.echo()


def _targets(settings: Settings) -> None:
    """Where events are delivered, or a warning that they go nowhere.

    Why loud: without a target the hub accepts and stores every command and publishes it to
    NATS, and nothing reaches the ERP, CRM or billing systems; nothing else says so."""
    from adapters.nats.registry import DECLARATIONS
    from adapters.outbound import SYSTEM_URLS

    targets = settings.target_urls()  # valid: the subscribers' start-up checked them
    for name, field in SYSTEM_URLS.items():
        url = getattr(settings, field, None)
        if url:
            modes = settings.outbound_modes()
            observe = " (observe only)" if modes.get(name) == "observe" else ""
            targets[name] = f"{url} ({field.removesuffix('_url')}){observe}"
    for index, (name, url) in enumerate(sorted(targets.items())):
        typer.echo(f"  {_label('Targets' if index == 0 else '')}{name} -> {_redact(url)}")
    if targets:
        return
    declared = ", ".join(d.name for d in DECLARATIONS)
    typer.echo()
    typer.secho(
        "WARNING: no delivery target is configured: events are stored and published to "
        "NATS, but no subscriber delivers them to any system.",
        fg=typer.colors.YELLOW,
        bold=True,
    )
    typer.secho(
        f"  fix: set CONCORD_TARGETS to name=url pairs for the subscribers ({declared}), "
        "e.g. CONCORD_TARGETS=erp=http://erp.internal:9000/concord,"
        "crm=http://crm.internal:9000/concord, and restart",
        fg=typer.colors.YELLOW,
    )


def _redact(url: str | None) -> str:
    """Hide a password in a database URL or DSN before printing it."""
    if not url:
        return "-"
    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(
            parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
        )
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", url)


@keys_app.command("create")
def keys_create(
    system: Annotated[str, typer.Option(help="crm, erp, billing or admin.")],
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="Client name (default <system>-<random>).")
    ] = None,
    scopes: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated: read,write,admin (default read,write; admin keys get all three)."
        ),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            help="When the key stops working: an ISO time with offset "
            "(2027-01-01T00:00:00Z) or a duration from now (90d, 12h, 30m). Default: never."
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a key bound to one system; it is printed once and only its hash is kept."""
    from adapters.key_rules import parse_expiry
    from adapters.keys import KeyRing, KeyRingError

    settings = _settings(data_dir=data_dir)
    default = "read,write,admin" if system == "admin" else "read,write"
    wanted = [s.strip() for s in (scopes or default).split(",") if s.strip()]
    name = client_id or f"{system}-{secrets.token_hex(3)}"
    try:
        ring = KeyRing.load(settings)
        expires_at = None if expires is None else parse_expiry(expires, ring.clock())
        key = ring.create(name, system, wanted, expires_at=expires_at)
    except (KeyRingError, ValueError) as refused:
        raise _fail(str(refused)) from None
    typer.secho(
        f"Created key for client {name!r} (system {system}, scopes "
        f"{', '.join(sorted(set(wanted)))}).",
        fg=typer.colors.GREEN,
    )
    typer.secho(
        f"It is shown only now; only its hash is stored in {ring.path}:", fg=typer.colors.YELLOW
    )
    typer.echo()
    typer.secho(f"    {key}", bold=True)
    typer.echo()
    base = f"http://{settings.host}:{settings.port}"
    typer.echo("Use it as (or send it in an X-API-Key header):")
    typer.echo(f'  curl -H "Authorization: Bearer <key>" {base}/v1/ownership')


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List keys: client, system, scopes, where they come from (never the keys)."""
    from adapters.keys import KeyRing, KeyRingError

    settings = _settings(data_dir=data_dir)
    try:
        ring = KeyRing.load(settings)
        infos = ring.entries()
    except (KeyRingError, ValueError) as refused:
        raise _fail(str(refused)) from None
    if not infos:
        typer.echo("No API keys yet. Create one: concord keys create --system crm")
        return
    header = (
        f"{'KEY ID':<14}{'CLIENT':<24}{'SYSTEM':<9}{'SCOPES':<19}{'SOURCE':<10}"
        f"{'CREATED':<27}STATUS"
    )
    typer.secho(header, bold=True)
    for info in infos:
        typer.echo(
            f"{info.key_id:<14}{info.client_id:<24}{info.system:<9}"
            f"{','.join(sorted(info.scopes)):<19}{info.source:<10}"
            f"{info.created_at or '-':<27}{info.status(ring.clock())}"
        )


@keys_app.command("revoke")
def keys_revoke(
    client_id: Annotated[str, typer.Argument(help="The client whose key stops working.")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a client's key: every API worker on this data folder refuses it at once."""
    from adapters.keys import KeyRing, KeyRingError

    try:
        info = KeyRing.load(_settings(data_dir=data_dir)).revoke(client_id)
    except (KeyRingError, ValueError) as refused:
        raise _fail(str(refused)) from None
    typer.secho(
        f"Revoked the key of {client_id!r} (system {info.system}) at {info.revoked_at}.",
        fg=typer.colors.GREEN,
    )
    if info.source == "settings":
        typer.echo("It is configured in CONCORD_API_KEYS: remove it there too.")


register_subscriber_commands(app, _settings, _fail)
register_nats_commands(app, _settings, _fail)
register_bi_role_commands(app, _settings, _fail)
register_close_commands(app, _settings, _fail)
register_projection_commands(app, _settings, _fail)
register_process_commands(app, _settings, _fail)
register_sandbox_commands(app, _fail)
register_inbound_commands(app, _settings, _fail)
register_exception_commands(app, _settings, _fail)
register_demo_command(app, _settings, _fail, start_hub)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

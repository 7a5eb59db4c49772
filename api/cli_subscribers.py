"""``concord subscribe``, ``concord subscribers``, ``concord replay`` and
``concord dead-letters``: running and operating the NATS subscribers from a shell.

Why a module of its own: these commands import the NATS and PostgreSQL stack lazily, and
keeping them apart from ``api.cli`` keeps that file about serving and keys.
``register(app, ...)`` adds them to the ``concord`` application.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from adapters.settings import Settings

SettingsFactory = Callable[..., "Settings"]
Fail = Callable[..., typer.Exit]


def register(app: typer.Typer, settings_factory: SettingsFactory, fail: Fail) -> None:
    """Add the subscriber commands to ``app`` (helpers come from ``api.cli``)."""
    dead_app = typer.Typer(help="List, show, retry and discard dead letters.", no_args_is_help=True)
    app.add_typer(dead_app, name="dead-letters")

    def settings_with_servers() -> Settings:
        settings = settings_factory()
        if not settings.database_url or not settings.nats_url:
            raise fail(
                "subscribers need a database and a NATS server",
                "set CONCORD_DATABASE_URL and CONCORD_NATS_URL (`concord serve` runs "
                "the subscribers itself with the embedded servers)",
            )
        return settings

    def settings_with_database() -> Settings:
        settings = settings_factory()
        if not settings.database_url:
            raise fail("no database configured", "set CONCORD_DATABASE_URL")
        return settings

    @app.command()
    def subscribe(
        names: Annotated[
            list[str] | None,
            typer.Argument(
                help="Subscribers to run (default: every one with a target in CONCORD_TARGETS).",
                show_default=False,
            ),
        ] = None,
    ) -> None:
        """Push events to the target systems (durable; Ctrl-C stops, restart resumes)."""
        import asyncio
        import logging
        import signal

        from adapters.nats.registry import DECLARATIONS, UnknownSubscriber
        from adapters.nats.runner import run_subscribers
        from adapters.outbound import configured_targets

        settings = settings_with_servers()
        try:
            configured = configured_targets(settings)
        except ValueError as invalid:  # UnknownSubscriber is one
            raise fail(
                str(invalid),
                "declared subscribers: erp, crm, billing; targets come "
                "from CONCORD_TARGETS=erp=http://host/path,...",
            ) from None
        declared = [d.name for d in DECLARATIONS]
        for name in names or []:
            if name not in declared:
                raise fail(f"no subscriber {name!r}", f"declared: {', '.join(declared)}")
            if name not in configured:
                raise fail(
                    f"subscriber {name!r} has no target",
                    f"set CONCORD_TARGETS={name}=http://host/path or the system's URL "
                    "(CONCORD_NETSUITE_URL, CONCORD_SALESFORCE_URL, CONCORD_STRIPE_URL)",
                )
        chosen = [n for n in declared if n in configured and (not names or n in names)]
        if not chosen:
            raise fail(
                "no subscriber has a target",
                "set CONCORD_TARGETS, e.g. erp=http://erp.local/concord/events, or "
                "CONCORD_NETSUITE_URL / CONCORD_SALESFORCE_URL / CONCORD_STRIPE_URL",
            )
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

        async def run() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            typer.secho(
                f"Delivering from {settings.nats_stream} to {', '.join(chosen)}; Ctrl-C stops.",
                fg=typer.colors.CYAN,
            )
            await run_subscribers(settings, chosen, stop)

        try:
            asyncio.run(run())
        except UnknownSubscriber as unknown:
            raise fail(str(unknown)) from None
        typer.secho("Subscribers stopped.", fg=typer.colors.CYAN)

    @app.command()
    def subscribers() -> None:
        """Lag of every subscriber: pending in the stream, unconfirmed, held back."""
        import asyncio

        from adapters.nats.runner import subscriber_lag

        report = asyncio.run(subscriber_lag(settings_with_servers()))
        header = (
            f"{'SUBSCRIBER':<12}{'TARGET':<8}{'RUNNING':<9}{'PENDING':>9}{'UNACKED':>9}"
            f"{'REDELIV':>9}{'DEAD':>7}{'PARKED':>8}{'HELD':>6}"
        )
        typer.secho(header, bold=True)
        for row in report.values():
            typer.echo(
                f"{row['subscriber']:<12}{'yes' if row['configured'] else 'no':<8}"
                f"{'yes' if row['running'] else 'no':<9}{_n(row['num_pending']):>9}"
                f"{_n(row['num_ack_pending']):>9}{_n(row['num_redelivered']):>9}"
                f"{row['dead_letters']:>7}{row['parked']:>8}{row['held_aggregates']:>6}"
            )

    @app.command()
    def replay(
        subscriber: Annotated[str, typer.Argument(help="erp, crm, billing ...")],
        from_position: Annotated[
            int | None, typer.Option("--from-position", min=1, help="Stream sequence to start at.")
        ] = None,
        since: Annotated[
            datetime | None,
            typer.Option(
                "--since",
                formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
                help="Start time (ISO 8601; UTC unless an offset is given).",
            ),
        ] = None,
        aggregate: Annotated[
            str | None,
            typer.Option(
                "--aggregate", help="Only one aggregate: <entity>:<id>, e.g. order:3f2c..."
            ),
        ] = None,
    ) -> None:
        """Deliver a subscriber's events again (targets deduplicate by event id)."""
        import asyncio
        from datetime import UTC

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        from adapters.nats.registry import UnknownSubscriber
        from adapters.nats.replay import ReplayRequest
        from adapters.nats.runner import replay_subscriber

        settings = settings_with_servers()
        entity: tuple[str, str] | None = None
        if aggregate is not None:
            kind, sep, ident = aggregate.partition(":")
            if not sep or not kind or not ident:
                raise fail(
                    f"--aggregate {aggregate!r} must be <entity>:<id>",
                    "e.g. --aggregate order:3f2c9a1e-...",
                )
            entity = (kind, ident)
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        try:
            request = ReplayRequest(start_seq=from_position, since=since, aggregate=entity)
        except ValueError as invalid:
            raise fail(
                str(invalid),
                "give --from-position N, --since ISO-TIME and/or --aggregate entity:id",
            ) from None
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        ) as bar:
            task = bar.add_task(f"replaying {subscriber}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                result = asyncio.run(
                    replay_subscriber(settings, subscriber, request, progress=progress)
                )
            except UnknownSubscriber as unknown:
                raise fail(str(unknown)) from None
        colour = typer.colors.GREEN if not result.failures else typer.colors.YELLOW
        typer.secho(
            f"Replayed {result.delivered:,} event(s) to {subscriber} "
            f"(skipped {result.skipped:,}, failed {len(result.failures):,}; stream "
            f"positions {result.first_seq or '-'}..{result.last_seq or '-'}).",
            fg=colour,
        )
        for failure in result.failures[:20]:
            typer.echo(f"  #{failure.stream_seq} {failure.event_id}: {failure.error}")
        if result.failures:
            raise typer.Exit(2)

    def with_conn(action: Callable[[Any, str], Any]) -> Any:
        from adapters.bootstrap import Connections
        from adapters.nats.dead_letters import DeadLetterError
        from adapters.postgres.schema import create_schema

        settings = settings_with_database()
        try:
            with Connections(settings).postgres("cli") as conn:
                create_schema(conn, settings.schema_name)
                return action(conn, settings.schema_name)
        except DeadLetterError as refused:
            raise fail(str(refused)) from None

    @dead_app.command("list")
    def dead_list(
        subscriber: Annotated[str | None, typer.Option(help="Only this subscriber.")] = None,
        status: Annotated[
            str,
            typer.Option(
                help="open (default), all, dead, retry_requested, retrying, delivered, discarded."
            ),
        ] = "open",
        limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    ) -> None:
        """Dead letters, newest first."""
        from adapters.nats.dead_letters import list_dead_letters

        items = with_conn(
            lambda conn, schema: list_dead_letters(
                conn,
                schema,
                subscriber=subscriber,
                status=None if status == "all" else status,
                limit=limit,
            )
        )
        if not items:
            typer.echo("No dead letters." if status == "open" else "None found.")
            return
        typer.secho(
            f"{'ID':>6}  {'SUBSCRIBER':<10}{'STATUS':<16}{'EVENT':<34}"
            f"{'AGGREGATE':<48}{'PARKED':>7}  ERROR",
            bold=True,
        )
        for d in items:
            event = f"{d['event_type']} v{d['version']}"
            typer.echo(
                f"{d['id']:>6}  {d['subscriber']:<10}{d['status']:<16}{event:<34}"
                f"{d['aggregate'] + ':' + d['aggregate_id']:<48}"
                f"{d['parked_behind']:>7}  {d['error'][:80]}"
            )

    @dead_app.command("show")
    def dead_show(dead_letter_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
        """One dead letter: envelope, error, attempts and what waits behind it."""
        import json

        from adapters.nats.dead_letters import get_dead_letter

        item = with_conn(lambda conn, schema: get_dead_letter(conn, schema, dead_letter_id))
        typer.echo(json.dumps(item, indent=2, default=str))

    @dead_app.command("retry")
    def dead_retry(dead_letter_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
        """Deliver it again; the events parked behind it follow in order."""
        from adapters.nats.dead_letters import request_retry

        item = with_conn(
            lambda conn, schema: request_retry(conn, schema, dead_letter_id, actor="cli")
        )
        typer.secho(
            f"Retry of dead letter {dead_letter_id} requested; the running "
            f"'{item['subscriber']}' subscriber delivers it within a second, then "
            f"releases {item['parked_behind']} parked event(s).",
            fg=typer.colors.GREEN,
        )
        _warn_if_not_running(settings_factory(), item["subscriber"])

    @dead_app.command("discard")
    def dead_discard(dead_letter_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
        """Give up on it for its target; the events parked behind it are released."""
        from adapters.nats.dead_letters import discard

        item = with_conn(lambda conn, schema: discard(conn, schema, dead_letter_id, actor="cli"))
        typer.secho(
            f"Dead letter {dead_letter_id} discarded; {item['subscriber']} releases "
            "the events parked behind it.",
            fg=typer.colors.GREEN,
        )
        _warn_if_not_running(settings_factory(), item["subscriber"])


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _warn_if_not_running(settings: Settings, subscriber: str) -> None:
    if not settings.nats_url:
        return
    import asyncio

    from adapters.nats.runner import subscriber_lag

    try:
        report = asyncio.run(subscriber_lag(settings, [subscriber]))
    except Exception:  # informational only
        return
    if not report.get(subscriber, {}).get("running"):
        typer.secho(
            f"  note: no '{subscriber}' subscriber is running now; it happens when "
            f"one starts (concord subscribe {subscriber}, or concord serve).",
            fg=typer.colors.YELLOW,
        )

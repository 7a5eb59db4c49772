"""``concord inbound``: the inbound log from a shell (held deliveries, re-translation).

Kept apart from ``api.cli`` for the same reason as the subscriber commands: the PostgreSQL
stack is imported only when one of these runs. ``register(app, ...)`` adds them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from adapters.settings import Settings

SettingsFactory = Callable[..., "Settings"]
Fail = Callable[..., typer.Exit]


def register(app: typer.Typer, settings_factory: SettingsFactory, fail: Fail) -> None:
    inbound_app = typer.Typer(
        help="The inbound log: held deliveries, re-translation.", no_args_is_help=True
    )
    app.add_typer(inbound_app, name="inbound")

    def settings_with_database() -> Settings:
        settings = settings_factory()
        if not settings.database_url:
            raise fail(
                "no database configured",
                "set CONCORD_DATABASE_URL (the embedded one runs only inside `concord serve`)",
            )
        return settings

    mappings_app = typer.Typer(
        help="The product catalogue (SKUs and every system's ids).", no_args_is_help=True
    )
    app.add_typer(mappings_app, name="mappings")

    @mappings_app.command("load")
    def load(
        path: Annotated[
            Path, typer.Argument(help="The catalogue file (see ops/mappings/products.yaml).")
        ],
    ) -> None:
        """Define or change every product of the file (unchanged ones record nothing)."""
        from adapters.bootstrap import open_runtime
        from adapters.mappings import MappingFileError, apply_mappings, read_mapping_file
        from hub.application.service import Caller

        try:
            catalogue = read_mapping_file(path)
        except MappingFileError as bad:
            raise fail(str(bad), "fix the entry named above and load the file again") from None
        runtime = open_runtime(settings_with_database())
        try:
            typer.echo(
                f"Loading {len(catalogue.products)} products (version {catalogue.version}) ..."
            )
            caller = Caller(
                client_id="cli-mappings",
                system="admin",
                scopes=frozenset({"read", "write", "admin"}),
            )
            report = apply_mappings(runtime.hub, caller, catalogue.products)
            released = runtime.inbound.release()
        finally:
            runtime.close()
        typer.secho(
            f"Done: {len(report.defined)} defined, {len(report.changed)} changed, "
            f"{len(report.unchanged)} unchanged, {len(report.refused)} refused; "
            f"{len(released)} held deliveries re-run.",
            fg=typer.colors.GREEN if not report.refused else typer.colors.YELLOW,
        )
        for refusal in report.refused:
            typer.secho(f"  {refusal['sku']}: {refusal['detail']}", fg=typer.colors.RED)
        if report.refused:
            raise typer.Exit(1)

    @inbound_app.command("held")
    def held() -> None:
        """List held deliveries: what each waits for, and since when."""
        from adapters.bootstrap import open_runtime

        runtime = open_runtime(settings_with_database())
        try:
            rows = runtime.inbound.log.list(status="held", limit=1000)
        finally:
            runtime.close()
        if not rows:
            typer.echo("No held deliveries.")
            return
        for row in rows:
            wait = row.waiting_for.describe() if row.waiting_for else "?"
            typer.echo(
                f"{row.id:>8}  {row.system:<10} {row.event_type:<32} {row.event_id:<28} "
                f"waits for {wait} since {row.received_at.isoformat(timespec='seconds')}"
            )

    @inbound_app.command("replay")
    def replay(
        since: Annotated[
            datetime,
            typer.Option(
                "--since",
                help="Re-run deliveries received at or after this time (UTC if no offset).",
                formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"],
            ),
        ],
        system: Annotated[
            str | None, typer.Option("--system", help="Only this source system (stripe…).")
        ] = None,
    ) -> None:
        """Re-translate logged deliveries after a translator or mapping fix (effects stay
        single: applied deliveries find their receipt)."""
        from datetime import UTC

        from adapters.bootstrap import open_runtime

        moment = since if since.tzinfo else since.replace(tzinfo=UTC)
        runtime = open_runtime(settings_with_database())
        try:
            typer.echo(f"Re-translating deliveries received since {moment.isoformat()} ...")
            counts = runtime.inbound.replay(since=moment, system=system)
        finally:
            runtime.close()
        if not counts:
            typer.echo("No deliveries in that period.")
            return
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        typer.secho(f"Done: {summary}.", fg=typer.colors.GREEN)

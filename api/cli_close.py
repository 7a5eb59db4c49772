"""``concord close 2026-01``: freeze a month's finance figures (see
``adapters/projections/period_close.py`` for why a close lives outside the projection)."""

from __future__ import annotations

import getpass
import re
from datetime import date
from typing import Annotated

import typer

# The same helper types every ``concord`` sub-module takes from ``api.cli``.
from api.cli_projections import Fail, SettingsFactory

MONTH = re.compile(r"^([1-9][0-9]{3})-(0[1-9]|1[0-2])$")


def register(app: typer.Typer, settings_factory: SettingsFactory, fail: Fail) -> None:
    """Add ``concord close MONTH`` to ``app`` (helpers come from ``api.cli``)."""

    @app.command("close")
    def close_command(
        month: Annotated[str, typer.Argument(help="The month to close, YYYY-MM.")],
        note: Annotated[str | None, typer.Option("--note", help="Why, for the record.")] = None,
        by: Annotated[
            str | None, typer.Option("--by", help="Who closes it (default: the OS user).")
        ] = None,
    ) -> None:
        """Freeze a month's metrics; later changes to it show as adjustments, never silently."""
        from adapters.bootstrap import Connections
        from adapters.projections.period_close import CloseRefused, close_month
        from projections.metrics.projection import Metrics

        found = MONTH.match(month)
        if found is None:
            raise fail(f"MONTH: {month!r} is not a month", "write it as YYYY-MM, e.g. 2026-01")
        if note is not None and len(note) > 1000:
            raise fail("--note: at most 1,000 characters")
        actor = (by or getpass.getuser() or "operator")[:200]
        settings = settings_factory()
        if not settings.database_url:
            raise fail("close needs a database", "set CONCORD_DATABASE_URL")
        first = date(int(found[1]), int(found[2]), 1)
        with Connections(settings).postgres("cli") as conn:
            try:
                closed = close_month(conn, settings.schema_name, Metrics(), first, actor, note)
            except CloseRefused as refused:
                raise fail(f"cannot close {month}: {refused}") from None
        typer.echo(
            f"Closed {month}: {closed.rows} figure row(s) frozen at "
            f"{closed.closed_at:%Y-%m-%d %H:%M:%S %Z} by {closed.closed_by}."
        )
        typer.echo("Later events that change it show as adjustments in GET /v1/metrics.")

"""``concord process run | show <id>``: the quote-to-cash process manager from a shell.

``run`` is what ``concord serve`` also does in the background (its follower is a projection
runner: a standby waits while another process runs it; its dispatcher takes a lock per
batch), for running it as a process of its own. ``show`` prints one deal's process, found by
any of its ids, as ``GET /v1/processes/{id}`` answers it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from adapters.settings import Settings

SettingsFactory = Callable[..., "Settings"]
Fail = Callable[..., typer.Exit]


def describe(view: dict[str, Any]) -> list[str]:
    """Lines of ``concord process show``."""
    lines = [
        f"deal {view['process_id']} (opportunity {view.get('opportunity_id') or '-'}): "
        f"{view['status']}" + (f" — {view['reason']}" if view.get("reason") else "")
    ]
    for step in view["steps"]:
        late = "  OVERDUE" if step.get("overdue") else ""
        lines.append(f"  {step['step']:<21} {step['status']:<9} {step.get('detail') or ''}{late}")
    for command in view["commands"]:
        error = f": {command['error']}" if command.get("error") else ""
        lines.append(
            f"  decided {command['entity']}.{command['name']}: {command['status']} "
            f"({command['attempts']} attempt(s)){error}"
        )
    for delivery in view["deliveries"]:
        lines.append(
            f"  delivery to {delivery['target']} of {delivery['aggregate']}: {delivery['state']}"
            f" after {delivery['attempts']} attempt(s): {delivery.get('error') or ''}"
        )
    return lines


def register(app: typer.Typer, settings_factory: SettingsFactory, fail: Fail) -> None:
    """Add ``concord process ...`` to ``app`` (helpers come from ``api.cli``)."""
    group = typer.Typer(help="The quote-to-cash process manager.", no_args_is_help=True)
    app.add_typer(group, name="process")

    def database() -> Settings:
        settings = settings_factory()
        if not settings.database_url:
            raise fail(
                "the process manager needs a database",
                "set CONCORD_DATABASE_URL (`concord serve` runs it with the embedded one)",
            )
        return settings

    @group.command("run")
    def run_command() -> None:
        """Follow the stores and drive every deal until Ctrl-C."""
        import asyncio
        import logging
        import signal

        from adapters.bootstrap import open_runtime
        from adapters.gc_tuning import tune_for_serving
        from adapters.process.service import process_service

        settings = database()
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        runtime = open_runtime(settings)
        tune_for_serving()

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await process_service(runtime)(stop)

        typer.secho(
            "Running the quote-to-cash process manager; Ctrl-C stops.", fg=typer.colors.CYAN
        )
        try:
            asyncio.run(main())
        finally:
            runtime.close()
        typer.secho("Process manager stopped.", fg=typer.colors.CYAN)

    @group.command("show")
    def show_command(
        id: Annotated[str, typer.Argument(help="Any id of the deal.", max=255)],
    ) -> None:
        """One deal's process: steps, decisions, stuck deliveries."""
        from adapters.bootstrap import Connections
        from adapters.process.reads import find_processes, process_view
        from adapters.process.tables import PROCESSES
        from adapters.projections.schema import exists

        settings = database()
        with Connections(settings).postgres("cli") as conn:
            schema = settings.schema_name
            found = find_processes(conn, schema, id) if exists(conn, schema, PROCESSES.name) else []
            if len(found) != 1:
                raise fail(
                    f"{len(found) or 'no'} deals have the id {id!r}"
                    + (f": {', '.join(found)}" if found else ""),
                    "ask by one process id (`concord process show <process id>`)",
                )
            view = process_view(conn, schema, found[0])
        assert view is not None
        for line in describe(view):
            typer.echo(line)

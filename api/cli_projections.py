"""``concord projections run | status | rebuild <name>``: the read models from a shell.

``run`` is what ``concord serve`` also does in the background (one runner per projection,
standbys wait if another process runs them). ``rebuild`` asks the runner wherever it runs
(it is woken by a NOTIFY) and shows the progress; with no runner anywhere it rebuilds in
this process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from psycopg import Connection

    from adapters.projections.status import ProjectionStatus
    from adapters.settings import Settings
    from projections.definition import Projection

SettingsFactory = Callable[..., "Settings"]
Fail = Callable[..., typer.Exit]


def describe(status: ProjectionStatus) -> list[str]:
    """Lines of ``concord projections status`` for one projection."""
    built = "never built" if status.version is None else f"version {status.version}"
    lines = [
        f"{status.name} ({status.title}): {status.state}, {built} (code version "
        f"{status.code_version}), tables {', '.join(status.tables)}"
    ]
    for store in status.stores:
        lines.append(
            f"  {store.store:<10} position {store.position:,} of {store.head:,}  lag "
            f"{store.lag_events:,} event(s), {store.lag_seconds:.1f} s"
        )
    if status.failure is not None:
        f = status.failure
        lines.append(
            f"  FAILED at {f.store} position {f.position} (event {f.event_id}) at "
            f"{f.at:%Y-%m-%d %H:%M:%S%z}: {f.reason}"
        )
    if status.rebuild is not None:
        r = status.rebuild
        lines.append(f"  rebuilding (version {r.version}): {r.done:,} of {r.total:,} event(s)")
    elif status.rebuild_requested:
        lines.append("  rebuild requested")
    return lines


def register(app: typer.Typer, settings_factory: SettingsFactory, fail: Fail) -> None:
    """Add ``concord projections ...`` to ``app`` (helpers come from ``api.cli``)."""
    group = typer.Typer(help="Read models for BI and auditors.", no_args_is_help=True)
    app.add_typer(group, name="projections")

    def database() -> Settings:
        settings = settings_factory()
        if not settings.database_url:
            raise fail(
                "projections need a database",
                "set CONCORD_DATABASE_URL (`concord serve` runs them with the embedded one)",
            )
        return settings

    @group.command("status")
    def status_command() -> None:
        """Position per store, lag in events and seconds, state (and failures)."""
        from adapters.bootstrap import Connections
        from adapters.projections.status import projection_status
        from projections.registry import all_projections

        settings = database()
        with Connections(settings).postgres("cli") as conn:
            found = projection_status(conn, settings.schema_name, all_projections())
        for status in found:
            for line in describe(status):
                typer.echo(line)
        if any(s.state == "failed" for s in found):
            raise typer.Exit(1)

    @group.command("run")
    def run_command() -> None:
        """Run every projection's runner until Ctrl-C (standby if another process runs it)."""
        import logging
        import signal
        import threading

        from adapters.bootstrap import Connections
        from adapters.gc_tuning import tune_for_serving
        from adapters.projections.service import runners

        settings = database()
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        tune_for_serving()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        threads = [
            threading.Thread(target=r.run, args=(stop,), name=f"projection-{r.projection.name}")
            for r in runners(settings, Connections(settings))
        ]
        for thread in threads:
            thread.start()
        typer.secho("Running the projections; Ctrl-C stops.", fg=typer.colors.CYAN)
        while any(t.is_alive() for t in threads) and not stop.wait(1.0):
            pass
        stop.set()
        for thread in threads:
            thread.join()
        typer.secho("Projections stopped.", fg=typer.colors.CYAN)

    @group.command("rebuild")
    def rebuild_command(
        name: Annotated[str, typer.Argument(help="The projection, e.g. erp.")],
    ) -> None:
        """Rebuild into shadow tables from position 0; swap in atomically when caught up."""
        from adapters.bootstrap import Connections
        from adapters.gc_tuning import tune_for_serving
        from adapters.nats.runner import lock_held
        from adapters.projections.runner import ProjectionFailed, ProjectionRunner, lock_key
        from adapters.projections.status import request_rebuild
        from projections.registry import all_projections, by_name

        projection = by_name(name)
        if projection is None:
            known = ", ".join(p.name for p in all_projections())
            raise fail(f"no projection named {name!r}", f"choose one of: {known}")
        settings = database()
        connections = Connections(settings)
        with connections.postgres("cli") as conn:
            request_rebuild(conn, settings.schema_name, projection)
            elsewhere = lock_held(conn, lock_key(settings.schema_name, projection.name))
            if elsewhere:
                typer.echo(f"Asked the running {name} runner to rebuild ...")
                _follow(conn, settings.schema_name, projection)
                return
        typer.echo(f"No {name} runner is running: rebuilding here ...")
        tune_for_serving()  # a rebuild's events would trigger full collections by the hundred
        worker = ProjectionRunner(
            projection, connections, settings.schema_name, batch=settings.projection_batch
        )
        with typer.progressbar(length=1, label="rebuild") as bar:
            shown = [0]

            def progress(done: int, total: int) -> None:
                bar.length = max(total, done, 1)
                bar.update(done - shown[0])
                shown[0] = done

            worker.on_progress = progress
            try:
                worker.catch_up()
            except ProjectionFailed as failed:
                raise fail(
                    f"rebuild stopped: {failed}", "fix the projection, then rebuild"
                ) from None
        typer.secho(f"Rebuilt {name}; the new tables are live.", fg=typer.colors.GREEN)


def _follow(conn: Connection[Any], schema: str, projection: Projection) -> None:
    """Show a rebuild the runner in another process does, until it swapped or failed."""
    from adapters.projections.status import projection_status

    with typer.progressbar(length=1, label="rebuild") as bar:
        shown = 0
        while True:
            (status,) = projection_status(conn, schema, [projection])
            if status.failure is not None:
                typer.secho(f"rebuild stopped: {status.failure.reason}", fg=typer.colors.RED)
                raise typer.Exit(1)
            if status.rebuild is None and not status.rebuild_requested:
                break
            if status.rebuild is not None:
                bar.length = max(status.rebuild.total, status.rebuild.done, 1)
                bar.update(status.rebuild.done - shown)
                shown = status.rebuild.done
            time.sleep(0.5)
    typer.secho("Rebuilt; the new tables are live.", fg=typer.colors.GREEN)

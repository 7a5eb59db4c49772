"""``concord exceptions``: the exception workbench from a shell (list, show, act).

Same readers and actions as ``/v1/exceptions`` (``adapters/exceptions``); the actor an
action is recorded with is ``cli:<OS user>`` unless ``--by`` says who. ``register(app, ...)``
adds the commands to the ``concord`` application.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer

from api.cli_projections import Fail, SettingsFactory

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime


def register(app: typer.Typer, settings_factory: SettingsFactory, fail: Fail) -> None:
    """Add ``concord exceptions list|show|act`` to ``app`` (helpers come from ``api.cli``)."""
    exceptions_app = typer.Typer(
        help="The exception workbench: everything stuck, and acting on it.", no_args_is_help=True
    )
    app.add_typer(exceptions_app, name="exceptions")

    @contextmanager
    def runtime() -> Iterator[Runtime]:
        from adapters.bootstrap import open_runtime

        settings = settings_factory()
        if not settings.database_url:
            raise fail("no database configured", "set CONCORD_DATABASE_URL")
        opened = open_runtime(settings)
        try:
            yield opened
        finally:
            opened.close()

    @exceptions_app.command("list")
    def list_command(
        reason: Annotated[str | None, typer.Option(help="Only this reason.")] = None,
        customer: Annotated[str | None, typer.Option(help="Only this customer (id).")] = None,
        kind: Annotated[str | None, typer.Option(help="Only this object kind.")] = None,
        limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
        as_json: Annotated[bool, typer.Option("--json", help="The API's JSON.")] = False,
    ) -> None:
        """Everything stuck, grouped by object and reason, oldest first."""
        from adapters.exceptions.model import KINDS, REASONS
        from adapters.exceptions.workbench import list_exceptions

        _one_of(fail, "--reason", reason, REASONS)
        _one_of(fail, "--kind", kind, KINDS)
        if customer is not None:
            _uuid(fail, "--customer", customer)
        with runtime() as rt:
            body = list_exceptions(rt, reason=reason, customer=customer, kind=kind, limit=limit)
        if as_json:
            typer.echo(json.dumps(body, indent=2, default=str))
            return
        if not body["groups"]:
            typer.echo("Nothing is stuck.")
            return
        counts = ", ".join(f"{n} {why}" for why, n in sorted(body["counts"].items()))
        typer.secho(f"{body['count']} open item(s): {counts}", bold=True)
        for group in body["groups"]:
            subject = group["object"]
            typer.secho(
                f"\n{subject['kind']} {subject['id']}  [{group['reason']}]  "
                f"{group['count']} item(s), oldest {_age(group['age_s'])}"
                + (f"  {group['lineage']}" if group["lineage"] else ""),
                fg=typer.colors.YELLOW,
            )
            for item in group["items"]:
                typer.echo(f"  {item['id']}  {_age(item['age_s']):>6}  {item['summary'][:100]}")
                typer.echo(f"      actions: {', '.join(item['actions'])}")

    @exceptions_app.command("show")
    def show(exception_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
        """One item with its detail, links and history (JSON)."""
        from datetime import UTC, datetime

        from adapters.exceptions.workbench import find_item

        with runtime() as rt, rt.connection() as conn:
            item = find_item(rt, conn, exception_id)
        if item is None:
            raise fail(f"no open exception {exception_id}", "list them: concord exceptions list")
        typer.echo(json.dumps(item.view(datetime.now(UTC)), indent=2, default=str))

    @exceptions_app.command("act")
    def act_command(
        exception_id: Annotated[str, typer.Argument(metavar="ID")],
        action: Annotated[
            str, typer.Argument(help="retry, resolve, replay, approve, reject or discard.")
        ],
        note: Annotated[str | None, typer.Option(help="Why (required for resolve).")] = None,
        customer_id: Annotated[
            str | None, typer.Option(help="approve: the customer the record is.")
        ] = None,
        by: Annotated[str | None, typer.Option(help="Who acts (default: cli:<OS user>).")] = None,
    ) -> None:
        """Act on one item; recorded with who and when (history and lineage)."""
        from adapters.exceptions.actions import ActionRefused, ActionRequest, act
        from adapters.exceptions.model import ACTIONS

        _one_of(fail, "ACTION", action, ACTIONS)
        if note is not None and len(note) > 2000:
            raise fail("--note: at most 2,000 characters")
        request = ActionRequest(
            exception_id=exception_id,
            action=action,
            note=note,
            actor=(by or f"cli:{getpass.getuser() or 'operator'}")[:200],
            customer_id=None if customer_id is None else _uuid(fail, "--customer-id", customer_id),
        )
        with runtime() as rt:
            try:
                result = act(rt, request)
            except ActionRefused as refused:
                raise fail(f"{action} refused: {refused.message}") from None
        typer.secho(
            f"{action} done on {exception_id} by {result['action']['actor']}: "
            f"{json.dumps(result['outcome'], default=str)}",
            fg=typer.colors.GREEN,
        )


def _one_of(fail: Fail, name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise fail(f"{name}: {value!r} is not one of {', '.join(allowed)}")


def _uuid(fail: Fail, name: str, value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise fail(f"{name}: {value!r} is not a canonical id (a UUID)") from None


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"

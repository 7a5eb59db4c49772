"""``concord bi-role create``: the read-only PostgreSQL login BI tools use.

The password is generated and printed once (like an API key), or read from a file so it can
come from a secret manager without appearing on a command line or in shell history.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer

# The same helper types every ``concord`` sub-module takes from ``api.cli``.
from api.cli_projections import Fail, SettingsFactory


def register(app: typer.Typer, settings_factory: SettingsFactory, fail: Fail) -> None:
    """Add ``concord bi-role ...`` to ``app`` (helpers come from ``api.cli``)."""
    group = typer.Typer(help="The read-only database role for BI tools.", no_args_is_help=True)
    app.add_typer(group, name="bi-role")

    @group.command("create")
    def create_command(
        name: Annotated[str, typer.Option("--name", help="PostgreSQL role name.")] = "concord_bi",
        password_file: Annotated[
            Path | None,
            typer.Option(
                "--password-file",
                help="Read the password from this file (default: generate one and print it).",
            ),
        ] = None,
    ) -> None:
        """Create (or update) a LOGIN role that can SELECT the projection tables, nothing else."""
        from adapters.bootstrap import Connections
        from adapters.projections.bi_access import BiRoleError, check_name, create_bi_role
        from projections.registry import all_projections

        settings = settings_factory()
        if not settings.database_url:
            raise fail("bi-role needs a database", "set CONCORD_DATABASE_URL")
        try:
            check_name(name)
        except BiRoleError as refused:
            raise fail(f"--name: {refused}", "e.g. --name concord_bi") from None
        password: str | None = None
        if password_file is not None:
            try:
                password = password_file.read_text(encoding="utf-8").strip()
            except OSError as unreadable:
                raise fail(f"--password-file: cannot read {password_file}: {unreadable}") from None
            if not password:
                raise fail(f"--password-file: {password_file} is empty")
        tables = [name for p in all_projections() for name in p.readable()]
        with Connections(settings).postgres("cli") as conn:
            generated = None
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            if password is None and exists is None:
                generated = password = secrets.token_urlsafe(24)
            created = create_bi_role(conn, settings.schema_name, name, password, tables)
        schema = settings.schema_name
        verb = "Created" if created else "Updated"
        typer.secho(
            f"{verb} role {name}: SELECT on {', '.join(tables)} in schema {schema}.",
            fg=typer.colors.GREEN,
        )
        if generated is not None:
            typer.echo(f"Password (shown once, store it now): {generated}")
        elif password_file is not None:
            typer.echo(f"Password set from {password_file}.")
        else:
            typer.echo("Existing password kept (pass --password-file to change it).")

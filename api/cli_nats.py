"""``concord nats creds create``: a consume-only NATS identity for an external subscriber.

Why a command: only the relay may publish on Concord's subjects (see
``adapters/nats/identities.py``), so a system that wants the events directly from NATS (not
pushed over HTTP by a Concord subscriber) needs an identity of its own that can read, keep
a durable consumer named after itself, and nothing else. The identity is added to the data
folder's identity files; a running embedded NATS reloads its users at once (SIGHUP), a
stopped one accepts the identity from its next start.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from adapters.settings import Settings

SettingsFactory = Callable[..., "Settings"]
Fail = Callable[..., typer.Exit]


def register(app: typer.Typer, settings_factory: SettingsFactory, fail: Fail) -> None:
    """Add ``concord nats ...`` to ``app`` (helpers come from ``api.cli``)."""
    nats_app = typer.Typer(help="NATS identities for other systems.", no_args_is_help=True)
    creds_app = typer.Typer(help="Consume-only NATS credentials.", no_args_is_help=True)
    nats_app.add_typer(creds_app, name="creds")
    app.add_typer(nats_app, name="nats")

    @creds_app.command("create")
    def creds_create(
        name: Annotated[
            str, typer.Option(help="The system's name: its NATS user and its consumer's name.")
        ],
        data_dir: Annotated[
            Path | None, typer.Option("--data-dir", help="Data folder of the embedded NATS.")
        ] = None,
    ) -> None:
        """Create a consume-only NATS identity; its password is printed once."""
        from adapters.embedded import nats_identities, nats_layout, reload_embedded_nats
        from adapters.nats.credentials import InvalidIdentityName
        from adapters.nats.identities import Scope, user_entry

        settings = settings_factory(data_dir=data_dir)
        folder = Path(settings.data_dir).expanduser().resolve()
        identities = nats_identities(folder)
        try:
            credential = identities.add_external(name)
        except InvalidIdentityName as refused:
            raise fail(str(refused)) from None
        reloaded = reload_embedded_nats(folder)
        layout = nats_layout(folder)
        port = layout.port_file.read_text().strip() if layout.port_file.exists() else "4222"
        stream = settings.nats_stream
        subjects = f"{settings.nats_subject_prefix}.v1.>"
        typer.secho(
            f"Created consume-only NATS identity {name!r} in {identities.root / 'external'}.",
            fg=typer.colors.GREEN,
        )
        if reloaded:
            typer.echo("The running embedded NATS reloaded its users (SIGHUP): it works now.")
        else:
            typer.echo("The embedded NATS accepts it from its next start (concord serve).")
        typer.secho("Its password is shown only now; only its hash is stored:", fg="yellow")
        typer.echo()
        typer.secho(f"    {credential.password}", bold=True)
        typer.echo()
        typer.echo(f"It may read stream {stream} ({subjects}) through a durable consumer")
        typer.echo(f"named {name!r}, and acknowledge its messages; it may not publish events.")
        typer.echo("For example, with the nats CLI:")
        typer.echo(
            f"  nats --server nats://127.0.0.1:{port} --user {name} --password <password> "
            f"consumer add {stream} {name} --pull --deliver all --ack explicit --defaults"
        )
        typer.echo(
            f"  nats --server nats://127.0.0.1:{port} --user {name} --password <password> "
            f"consumer next {stream} {name}"
        )
        identity = next(i for i in identities.identities() if i.user == name)
        typer.echo("For a NATS server of your own, add this user to its authorization users:")
        typer.echo(f"  {user_entry(identity, Scope(stream, settings.nats_subject_prefix))}")

"""``concord sandbox erp|crm|billing``: one stand-in SaaS system in the foreground.

For trying Concord against something that behaves like NetSuite, Salesforce or Stripe
without accounts there (``concord demo`` runs all three itself). Each keeps its records in
memory, pushes its changes back to Concord signed as the real system does (``--webhook-url``,
``--secret``) and takes faults over ``/_admin/faults``. Sandboxes bind to 127.0.0.1 only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    from adapters.sandbox.base import Sandbox

Fail = Callable[..., typer.Exit]
System = Literal["erp", "crm", "billing"]

#: Where each sandbox pushes to on a local hub, and what it plays.
HOOKS = {"erp": "netsuite", "crm": "salesforce", "billing": "stripe"}
PORTS = {"erp": 8701, "crm": 8702, "billing": 8703}


def build_sandbox(system: str, webhook_url: str | None, secret: str | None) -> Sandbox:
    """The sandbox of ``system``, pushing to ``webhook_url`` signed with ``secret``."""
    if system == "erp":
        from adapters.sandbox.erp import build as build_erp

        return build_erp(webhook_url=webhook_url, secret=secret)
    if system == "crm":
        from adapters.sandbox.crm import build as build_crm

        return build_crm(webhook_url=webhook_url, secret=secret)
    from adapters.sandbox.billing import DEFAULT_SECRET
    from adapters.sandbox.billing import build as build_billing

    return build_billing(webhook_url=webhook_url, secret=secret or DEFAULT_SECRET)


def register(app: typer.Typer, fail: Fail) -> None:
    """Add ``concord sandbox <system>`` to ``app``."""

    @app.command("sandbox")
    def sandbox_command(
        system: Annotated[
            System, typer.Argument(help="erp (NetSuite), crm (Salesforce) or billing (Stripe).")
        ],
        port: Annotated[
            int | None,
            typer.Option(
                min=1, max=65535, help="Port on 127.0.0.1 (erp 8701, crm 8702, billing 8703)."
            ),
        ] = None,
        webhook_url: Annotated[
            str | None,
            typer.Option(
                help="Where to push changes: Concord's /v1/webhooks/<system> "
                "(default http://127.0.0.1:8000/v1/webhooks/<netsuite|salesforce|"
                "stripe>)."
            ),
        ] = None,
        secret: Annotated[
            str | None,
            typer.Option(
                help="Signing secret of the pushes (Concord's CONCORD_WEBHOOK_SECRETS "
                "entry for that system).",
                envvar="CONCORD_SANDBOX_SECRET",
            ),
        ] = None,
    ) -> None:
        """Serve one sandbox system until Ctrl-C."""
        from adapters.sandbox.base import serve_forever

        chosen = port or PORTS[system]
        url = webhook_url or f"http://127.0.0.1:8000/v1/webhooks/{HOOKS[system]}"
        if not url.startswith(("http://", "https://")):
            raise fail(f"--webhook-url {url!r} is not an http(s) URL", "give http://host:port/...")
        sandbox = build_sandbox(system, url, secret)
        typer.secho(
            f"{system} sandbox ({HOOKS[system]}) on http://127.0.0.1:{chosen}; pushes to {url}"
            f"{'' if secret else ' UNSIGNED (pass --secret)'}; admin API under /_admin/; "
            "Ctrl-C stops.",
            fg=typer.colors.CYAN,
        )
        serve_forever(sandbox, chosen)

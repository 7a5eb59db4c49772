"""``concord demo``: the hub, the three sandboxes and a quarter of quote-to-cash in one command.

Why one process: a first-time user should see a deal go from the CRM through the ERP and
billing to cash without configuring four systems. The hub is the same as ``concord serve``
(embedded PostgreSQL and NATS when no URLs are set, the same background services); the
sandboxes (ERP, CRM, billing) run in threads beside it, wired both ways with fresh signing
secrets; the scenario itself is :mod:`adapters.sandbox.demo_quarter`. Afterwards the API stays
up (``--no-wait`` exits instead, for tests and scripts).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer

from api.demo_report import print_report

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime
    from adapters.sandbox.base import Running, Sandbox
    from adapters.settings import Settings

Fail = Callable[..., typer.Exit]
StartHub = Callable[..., "tuple[Settings, Runtime]"]

#: Ports the sandboxes take when free (as ``concord sandbox``), else any free port.
PORTS = {"erp": 8701, "crm": 8702, "billing": 8703}
HOOKS = {"erp": "netsuite", "crm": "salesforce", "billing": "stripe"}
STRIPE_KEY = "sk_test_concord_demo"


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class StepLines:
    """The progress display: one line per step with its count (redrawn in place on a
    terminal, printed once finished otherwise, so logs stay short)."""

    def __init__(self) -> None:
        self.step: str | None = None
        self.started = time.monotonic()
        self.tty = sys.stdout.isatty()
        self.last = ""

    def __call__(self, step: str, done: int, total: int) -> None:
        if step != self.step:
            self.close()
            self.step = step
            self.started = time.monotonic()
        bar = "#" * (20 * done // max(total, 1))
        took = time.monotonic() - self.started
        self.last = f"  {step:<48} [{bar:<20}] {done}/{total} ({took:.1f} s)"
        if self.tty:
            typer.echo(f"\r{self.last}", nl=False)

    def close(self) -> None:
        if self.step is not None:
            typer.echo("" if self.tty else self.last)
        self.step = None


def _sandboxes(hooks: str) -> dict[str, tuple[Sandbox, str]]:
    """The three sandboxes pushing to ``hooks``/<system>, each with its signing secret."""
    from adapters.sandbox.billing import BillingSandbox
    from adapters.sandbox.crm import CrmSandbox
    from adapters.sandbox.demo_quarter import erp_items
    from adapters.sandbox.erp import ErpSandbox

    keys = {name: secrets.token_hex(16) for name in PORTS}
    erp = ErpSandbox(secret=keys["erp"], items=erp_items())
    crm = CrmSandbox(keys["crm"])
    billing = BillingSandbox(keys["billing"], STRIPE_KEY, rate_per_s=100)
    made: dict[str, tuple[Sandbox, str]] = {}
    for name, sandbox in (("erp", erp), ("crm", crm), ("billing", billing)):
        sandbox.webhooks.configure(f"{hooks}/{HOOKS[name]}")
        made[name] = (sandbox, keys[name])
    return made


def _wire(running: dict[str, Running], keys: dict[str, str]) -> None:
    """Concord's connectors pointed at the sandboxes (the environment, which every part of
    the hub reads its settings from)."""
    os.environ.update(
        CONCORD_NETSUITE_URL=running["erp"].url,
        CONCORD_SALESFORCE_URL=running["crm"].url,
        CONCORD_SALESFORCE_TOKEN="00D_demo_token",
        CONCORD_STRIPE_URL=running["billing"].url,
        CONCORD_STRIPE_API_KEY=STRIPE_KEY,
        CONCORD_WEBHOOK_SECRETS=",".join(f"{HOOKS[n]}={keys[n]}" for n in PORTS),
        CONCORD_PROJECTION_POLL_INTERVAL_S="0.2",
    )


@contextlib.contextmanager
def _api(runtime: Runtime, host: str, port: int) -> Any:
    """The API served by uvicorn in a thread (the main thread plays the scenario)."""
    import uvicorn

    from api.app import create_app

    config = uvicorn.Config(
        create_app(runtime), host=host, port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="concord-api", daemon=True)
    thread.start()
    base = f"http://{host}:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                break
        time.sleep(0.1)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(15)


def _label(name: str) -> str:
    return typer.style(f"{name:<16}", fg=typer.colors.BRIGHT_BLACK)


def _urls(base: str, running: dict[str, Running]) -> None:
    typer.echo(f"  {_label('API')}{base}/v1")
    typer.echo(f"  {_label('Docs')}{base}/docs")
    for name, run in running.items():
        typer.echo(f"  {_label(f'{name} sandbox')}{run.url}  (admin: {run.url}/_admin/records)")


def register(
    app: typer.Typer, settings_of: Callable[..., Settings], fail: Fail, start: StartHub
) -> None:
    """Add ``concord demo`` to ``app`` (``start`` is ``concord serve``'s hub start-up)."""

    @app.command("demo")
    def demo(
        data_dir: Annotated[
            Path | None,
            typer.Option(
                "--data-dir",
                help="Data folder (default: a new demo-<time> folder in $CONCORD_DATA_DIR "
                "or ./.concord).",
            ),
        ] = None,
        port: Annotated[int | None, typer.Option(help="API port (default 8000).")] = None,
        no_wait: Annotated[
            bool, typer.Option("--no-wait", help="Exit after the summary (tests, scripts).")
        ] = False,
    ) -> None:
        """Start the hub and the ERP, CRM and billing sandboxes, play a quarter of
        quote-to-cash, print what happened, keep the API running until Ctrl-C."""
        from adapters.bootstrap import ConfigurationError
        from adapters.embedded import EmbeddedServerError
        from adapters.keys import KeyRingError
        from adapters.sandbox.base import serve_in_thread
        from adapters.sandbox.demo_quarter import Hub, Systems, play_quarter

        settings = settings_of(data_dir=data_dir, port=port)
        if data_dir is None:  # a folder of its own per run: the sandboxes' ids start afresh
            data_dir = Path(settings.data_dir) / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
        host = "127.0.0.1"
        if not _free(settings.port):
            raise fail(f"port {settings.port} is already in use", "pass --port N")
        made = _sandboxes(f"http://{host}:{settings.port}/v1/webhooks")
        # SIGTERM unwinds like Ctrl-C, so the embedded servers are stopped, not orphaned.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            with contextlib.ExitStack() as stack:
                running = {
                    name: stack.enter_context(
                        serve_in_thread(sandbox, PORTS[name] if _free(PORTS[name]) else 0)
                    )
                    for name, (sandbox, _) in made.items()
                }
                _wire(running, {name: key for name, (_, key) in made.items()})
                settings = settings_of(data_dir=data_dir, port=port)
                settings, runtime = start(stack, settings, frozenset())
                key = runtime.keys.create(
                    f"demo-{secrets.token_hex(3)}", "admin", ["read", "write", "admin"]
                )
                base = stack.enter_context(_api(runtime, host, settings.port))
                hub = Hub(base, key)
                if hub.count("customers"):
                    raise fail(
                        "the hub already holds data (a previous demo?): the sandboxes start "
                        "their ids afresh and would meet the old ones",
                        "pass a new --data-dir (or, with CONCORD_DATABASE_URL, a new "
                        "CONCORD_SCHEMA and CONCORD_NATS_STREAM)",
                    )
                typer.secho("Concord demo: hub and sandboxes running", bold=True)
                _urls(base, running)
                typer.echo(f"  {_label('Data folder')}{Path(settings.data_dir).resolve()}")
                typer.echo(f"  {_label('Admin key')}{key}")
                typer.echo()
                typer.secho("Playing the quarter", bold=True)
                systems = Systems(
                    made["erp"][0],  # type: ignore[arg-type]
                    made["crm"][0],  # type: ignore[arg-type]
                    made["billing"][0],  # type: ignore[arg-type]
                    running["billing"].url,
                    STRIPE_KEY,
                )
                progress = StepLines()
                report = play_quarter(systems, hub, progress)
                progress.close()
                print_report(report, systems, hub)
                if no_wait:
                    return
                typer.echo()
                typer.secho("The API keeps running; Ctrl-C stops everything.", bold=True)
                _urls(base, running)
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            pass  # Ctrl-C (or SIGTERM): the stack has stopped everything it started
        except EmbeddedServerError as failed:
            raise fail(
                str(failed),
                "set CONCORD_DATABASE_URL / CONCORD_NATS_URL to use servers of your own",
            ) from None
        except (ConfigurationError, KeyRingError, ValueError) as failed:
            raise fail(str(failed)) from None
        typer.secho("Concord demo stopped.", fg=typer.colors.CYAN)

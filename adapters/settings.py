"""Typed configuration for Concord, read from ``CONCORD_*`` environment variables.

Why a settings object instead of reading ``os.environ`` where a value is needed: one
composition root builds the hub from one ``Settings`` instance, so tests can build a hub with
their own values (their own database schema, their own NATS server) without touching the
process environment. Nothing here reads the environment at import time; values are read when
``Settings()`` is constructed.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from psycopg.conninfo import conninfo_to_dict
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.nats.size import MAX_PAYLOAD_BYTES

__all__ = ["ApiKeyEntry", "Settings"]


@dataclass(frozen=True)
class ApiKeyEntry:
    """One configured API client, parsed from ``CONCORD_API_KEYS``.

    Only the SHA-256 hex digest of the key is configured, never the key itself, so a leaked
    environment dump does not leak working credentials.
    """

    client_id: str
    system: str
    scopes: frozenset[str]
    sha256_hex: str


class Settings(BaseSettings):
    """Every knob Concord reads from its environment, with defaults for a laptop.

    ``None`` for ``database_url`` / ``nats_url`` means "start the embedded server from the
    PyPI wheel under ``data_dir``": the same PostgreSQL + NATS code path as production, with
    no installation step.
    """

    model_config = SettingsConfigDict(
        env_prefix="CONCORD_",
        # Constructing with field names (Settings(schema_name=...)) must keep working even
        # though ``schema_name`` also has an environment alias.
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )

    database_url: str | None = None
    """libpq URL or DSN; ``None`` starts an embedded PostgreSQL."""

    nats_url: str | None = None
    """``nats://host:port``; ``None`` starts the embedded NATS server (JetStream)."""

    data_dir: Path = Path(".concord")
    """Where the embedded servers keep their data (and where their logs are written)."""

    host: str = "127.0.0.1"
    port: int = 8000

    schema_name: str = Field(
        default="concord",
        validation_alias=AliasChoices("CONCORD_SCHEMA", "CONCORD_SCHEMA_NAME"),
    )
    """PostgreSQL schema holding every Concord table (env ``CONCORD_SCHEMA``)."""

    pool_size: int = 2
    """Connections the process's one PostgreSQL pool keeps open (shared by every store); it
    grows by up to ``max_overflow`` under load. Small by default: PostgreSQL's connections
    are shared by every process of an estate (``max_connections``)."""
    max_overflow: int = 10
    """Extra connections the pool may open under load, closed again when idle."""

    database_application_name: str = Field(default="concord", max_length=63)
    """``application_name`` of the hub's pooled connections (see ``pg_stat_activity``)."""

    lock_timeout_s: int = 5
    """Writers of one application serialise on a table lock; fail instead of queueing forever
    behind a stuck transaction."""

    api_keys: str = ""
    """Comma-separated ``client_id:system:scopes:sha256hex``; scopes joined with ``+``."""

    ownership_file: Path | None = None
    """``None`` lets the ownership loader use the policy shipped with the package."""

    otel_exporter: Literal["none", "console", "otlp"] = "none"
    otel_endpoint: str | None = None
    """Base OTLP/HTTP URL (e.g. ``http://collector:4318``); ``/v1/traces`` is appended."""

    service_name: str = "concord"

    group_commit_max: int = Field(default=256, ge=1)
    """Most commands folded into one ``save()``: batching is the main throughput lever."""

    max_event_bytes: int = Field(default=MAX_PAYLOAD_BYTES, ge=4096)
    """Largest event (as published: envelope plus NATS headers) a command may commit; the
    default is the NATS servers' ``max_payload`` (8 MiB). A larger event is refused with 413
    at commit, because the relay could never publish it."""
    personal_key_cache_s: float = Field(default=1.0, ge=0)
    """How long a process reuses a customer key it read for decrypting. An erasure is
    effective at once in the process that commits it and within this time in the others."""

    nats_relay_user: str | None = None
    """NATS user the relay connects as: the one identity allowed to publish on
    ``<prefix>.v1.>`` and to manage the stream. ``concord serve`` fills in the generated one
    when it starts the embedded NATS."""
    nats_relay_password: str | None = Field(default=None, repr=False)
    nats_relay_creds_file: Path | None = None
    """A NATS ``.creds`` file (JWT and NKey seed) for the relay, instead of user/password."""

    nats_subscriber_user: str | None = None
    """NATS user of Concord's subscribers, subscriber reports and replays: consume only."""
    nats_subscriber_password: str | None = Field(default=None, repr=False)
    nats_subscriber_creds_file: Path | None = None
    """A NATS ``.creds`` file for the subscriber identity, instead of user/password."""

    nats_tls_ca_file: Path | None = None
    """CA certificate(s) that signed the NATS server's TLS certificate (with a ``tls://``
    URL); unset, a ``tls://`` URL is checked against the system's trusted CAs."""

    nats_stream: str = "CONCORD_EVENTS"
    """JetStream stream every committed event is published to."""

    nats_subject_prefix: str = "concord"
    """First subject token (``concord.v1.<aggregate>.<EventType>.<id>``)."""

    nats_replicas: int = Field(default=1, ge=1, le=5)
    """Stream replicas; 1 on a single server, 3 in a cluster."""

    nats_duplicate_window_s: float = Field(default=120.0, gt=0)
    """Server-side dedupe window for ``Nats-Msg-Id``; the relay does not depend on it."""

    relay_batch: int = Field(default=1000, ge=1, le=2000)
    """Events read from a store and published (acks in flight) per relay round. Two rounds
    are in flight at once, which must stay under nats-py's 4000 pending publishes."""

    projection_batch: int = Field(default=500, ge=1, le=10000)
    """Events per upstream store a projection applies in one transaction (with its
    positions). Larger batches catch up faster; each holds its view's row locks longer."""

    projection_poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    """Longest a following projection waits for a NOTIFY before reading the stores anyway:
    a lost notification or LISTEN connection delays it by at most this."""

    q2c_step_timeout_minutes: int = Field(default=60, ge=1, le=43200)
    """Quote-to-cash: how long a step may wait on a target system (ERP acceptance, billing's
    subscription) before ``GET /v1/processes/{id}`` shows it overdue."""

    q2c_max_command_age_hours: int = Field(default=72, ge=1, le=87600)
    """Quote-to-cash: a decision caused by an event recorded longer ago than this (a rebuild
    of a new process-manager version, a long outage) is not executed unasked: it waits in the
    workbench (``failed_step``, status stale) for a retry."""

    q2c_poll_interval_s: float = Field(default=0.2, gt=0, le=60)
    """How often the quote-to-cash dispatcher looks for decided commands to execute."""

    sla_order_to_activation_hours: int = Field(default=72, ge=1, le=8760)
    """Order-to-activation SLA: an order's contract should be activated by billing within
    this many hours of the order being placed (``GET /v1/slas`` lists what breaches it)."""

    sla_invoice_to_cash_days: int = Field(default=45, ge=1, le=3650)
    """Invoice-to-cash SLA: an invoice should be paid in full within this many days of its
    issue date (``GET /v1/slas`` lists what breaches it)."""

    health_max_lag: int = Field(default=1000, ge=0)
    """``GET /v1/health`` reports ``degraded`` when the relay is more events than this behind
    the stores, or a subscriber has more than this pending. Some lag is normal under load
    (events wait milliseconds for the next relay round), so the threshold is not zero."""

    health_timeout_s: float = Field(default=2.0, gt=0, le=30)
    """Longest ``GET /v1/health`` waits for PostgreSQL and for NATS (they are asked side by
    side): past it, that part is reported down, so a health check never hangs."""

    rate_limit_per_s: float = Field(default=2000.0, ge=0)
    """Requests per second each API client may make, per API worker process (0: no limit).
    Generous on purpose: it stops a runaway integration, not normal or bulk traffic."""

    rate_limit_burst: int = Field(default=4000, ge=1)
    """Requests a client may make at once before the per-second rate applies."""

    auth_failure_limit_per_s: float = Field(default=10.0, ge=0)
    """Failed authentications per second allowed from one remote address, per worker (0: off);
    over it, every request from that address that needs a key answers 429."""

    auth_failure_burst: int = Field(default=100, ge=1)
    """Failed authentications one address may make at once."""

    targets: str = ""
    """Where each subscriber delivers: comma-separated ``name=url`` (``erp=http://erp:9000/
    events,crm=...``). A declared subscriber with no target configured is not started."""

    outbound: str = Field(default="", max_length=2000)
    """Mode per target system: comma-separated ``name:send`` or ``name:observe``
    (``erp:observe,billing:send``). Observe-only: everything is decided and recorded
    (``concord_observed_deliveries``), nothing is sent. Unnamed targets send."""

    target_secrets: str = Field(default="", repr=False)
    """Signing secrets per target: comma-separated ``name=secret``; during a rotation
    ``name=new|old`` signs with both (one ``v1=`` each). Secrets may not contain ``,`` or
    ``|``. A target with no entry gets unsigned deliveries."""

    webhook_secrets: str = Field(default="", repr=False)
    """Secrets per inbound system (``POST /v1/webhooks/<system>``): comma-separated
    ``system=secret``; during a rotation ``system=new|old`` accepts either. Stripe: the
    endpoint's ``whsec_…``; HubSpot: the app's client secret; Salesforce bridge and NetSuite:
    the shared HMAC secret; Chargebee: ``user:password`` of its HTTP Basic auth. A system
    with no entry refuses every delivery (401)."""

    inbound_release_interval_s: float = Field(default=1.0, ge=0)
    """How often each API worker applies held inbound deliveries whose dependency arrived
    through the API rather than a webhook (0: only webhooks and replays release them)."""

    stripe_account_metadata_key: str = Field(default="sf_account_id", min_length=1)
    """Stripe customer ``metadata`` key that holds the CRM account id it belongs to."""

    chargebee_account_field: str = Field(default="cf_sf_account_id", min_length=1)
    """Chargebee customer custom field (or ``meta_data`` key) holding the CRM account id."""

    chargebee_order_field: str = Field(default="cf_sf_opportunity_id", min_length=1)
    """Chargebee subscription custom field (or ``meta_data`` key) holding the CRM
    opportunity id: the order its contract is created from."""
    hubspot_webhook_url: str | None = Field(default=None, min_length=1, max_length=2000)
    """The target URL configured in the HubSpot app (HubSpot signs it): set it when a proxy
    makes the URL Concord sees differ from it; unset: the request's own URL."""

    hubspot_app_id: str | None = Field(default=None, min_length=1, max_length=50)
    """Concord's own HubSpot app id: changes whose ``sourceId`` names it are echoes of
    Concord's writes and cause nothing."""

    hubspot_won_stages: str = Field(default="closedwon", max_length=2000)
    """Comma-separated deal stage ids that mean closed won, used only when a deal's mirror
    has no ``hs_is_closed_won`` (custom pipelines use numeric stage ids)."""

    hubspot_default_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    """Currency of deals without ``deal_currency_code`` (a single-currency portal)."""

    stripe_erp_customer_metadata_key: str = Field(default="netsuite_customer_id", min_length=1)
    """Stripe customer ``metadata`` key that holds the ERP customer id (used when the CRM
    account id is absent)."""

    stripe_url: str | None = Field(default=None, pattern=r"^https?://", max_length=2000)
    """Base URL of the Stripe API the billing connector calls: ``https://api.stripe.com``, or
    the billing sandbox in tests and the demo; unset: no Stripe connector."""

    stripe_api_key: str | None = Field(default=None, min_length=1, repr=False)
    """Secret key (``sk_test_…`` / ``sk_live_…`` or a restricted ``rk_…``) of the billing
    connector; required with ``stripe_url``."""

    stripe_rate: float = Field(default=25.0, gt=0, le=10_000)
    """Requests per second to Stripe shared by every worker and process (Stripe allows 25
    in test mode, 100 live)."""

    salesforce_url: str | None = Field(default=None, pattern=r"^https?://", max_length=2000)
    """Base URL of the Salesforce org (``https://<my-domain>.my.salesforce.com``) or of the
    CRM sandbox; the CRM connector calls ``<url>/services/data/v60.0/...``."""

    salesforce_token: str | None = Field(default=None, repr=False, min_length=1)
    """OAuth access token the CRM connector sends as ``Authorization: Bearer``."""

    salesforce_concurrency: int = Field(default=5, ge=1, le=25)
    """Calls to Salesforce in flight at once, shared by every worker and process (the org's
    budget: 25 concurrent long requests in production, 5 in Developer orgs)."""

    salesforce_echo_client: str = Field(default="concord", pattern=r"^[A-Za-z0-9_./-]{1,64}$")
    """The ``client=`` Concord sends in ``Sforce-Call-Options`` on its CRM writes; CDC whose
    ``changeOrigin`` names it is an echo of Concord's own write and is ignored inbound."""

    netsuite_url: str | None = Field(default=None, pattern=r"^https?://", max_length=2000)
    """NetSuite's REST host (``https://<account>.suitetalk.api.netsuite.com``) or the ERP
    sandbox's address; unset: no NetSuite connector."""

    netsuite_token: str | None = Field(default=None, min_length=1, repr=False)
    """OAuth 2.0 bearer token of Concord's NetSuite integration (the sandbox needs none)."""

    netsuite_concurrency: int = Field(default=5, ge=1, le=1000)
    """Requests in flight to NetSuite across every Concord process: the account-wide limit
    (5 on a standard account) minus what other integrations of the account use."""

    def target_secret_map(self) -> dict[str, tuple[str, ...]]:
        """Parse ``target_secrets``; raise ``ValueError`` naming the entry (never the secret)."""
        return _secret_map(self.target_secrets, "CONCORD_TARGET_SECRETS")

    def webhook_secret_map(self) -> dict[str, tuple[str, ...]]:
        """Parse ``webhook_secrets``; raise ``ValueError`` naming the entry (never the secret)."""
        return _secret_map(self.webhook_secrets, "CONCORD_WEBHOOK_SECRETS")

    def outbound_modes(self) -> dict[str, str]:
        """Parse ``outbound``; raise ``ValueError`` naming the bad entry."""
        modes: dict[str, str] = {}
        for raw in self.outbound.split(","):
            item = raw.strip()
            if not item:
                continue
            name, _, mode = item.partition(":")
            name, mode = name.strip(), mode.strip()
            if not name or mode not in ("send", "observe"):
                raise ValueError(
                    f"CONCORD_OUTBOUND entry {item!r}: write <target>:send or <target>:observe"
                )
            modes[name] = mode
        return modes

    def target_urls(self) -> dict[str, str]:
        """Parse ``targets``; raise ``ValueError`` naming the bad entry.

        A method rather than a validator for the same reason as :meth:`api_key_entries`: the
        error surfaces where the targets are needed (starting subscribers), precisely.
        """
        urls: dict[str, str] = {}
        for raw in self.targets.split(","):
            item = raw.strip()
            if not item:
                continue
            name, sep, url = item.partition("=")
            name, url = name.strip(), url.strip()
            if not sep or not name or not url.startswith(("http://", "https://")):
                msg = f"CONCORD_TARGETS entry {item!r} must be 'name=http(s)://host/path'"
                raise ValueError(msg)
            urls[name] = url
        return urls

    def postgres_env(self, dsn: str) -> dict[str, str]:
        """Translate a libpq URL/DSN into the environment the eventsourcing library reads.

        The library does not accept a URL, only separate ``POSTGRES_*`` keys, so every
        application, projection runner and relay gets its env from here and they cannot drift
        apart. Missing parts fall back the way libpq does (``PGHOST``, ``PGPORT``, ``PGUSER``,
        ``PGPASSWORD``, ``PGDATABASE``, then built-in defaults), except that a missing host
        means ``localhost`` rather than libpq's compiled-in socket directory, which differs
        between builds.
        """
        parts = conninfo_to_dict(dsn)
        host = str(parts.get("host") or os.environ.get("PGHOST") or "localhost")
        if "," in host:
            msg = f"multi-host connection strings are not supported: host={host!r}"
            raise ValueError(msg)
        user = str(parts.get("user") or os.environ.get("PGUSER") or getpass.getuser())
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": str(parts.get("dbname") or os.environ.get("PGDATABASE") or user),
            "POSTGRES_HOST": host,
            "POSTGRES_PORT": str(parts.get("port") or os.environ.get("PGPORT") or "5432"),
            "POSTGRES_USER": user,
            # An empty password is valid (trust / peer auth), the library only needs the key.
            "POSTGRES_PASSWORD": str(parts.get("password") or os.environ.get("PGPASSWORD") or ""),
            "POSTGRES_SCHEMA": self.schema_name,
            "POSTGRES_POOL_SIZE": str(self.pool_size),
            "POSTGRES_MAX_OVERFLOW": str(self.max_overflow),
            "POSTGRES_LOCK_TIMEOUT": str(self.lock_timeout_s),
            # POSTGRES_ENABLE_DB_FUNCTIONS is deliberately never set: in eventsourcing 9.5.x
            # the stored function is named per schema but hard-codes one table, so events of
            # one application land in another's table, and it skips the table lock, so
            # tailing readers (projections, the NATS relay) can silently miss events.
            # tests/unit/test_settings.py guards that it stays unset.
        }

    def api_key_entries(self) -> tuple[ApiKeyEntry, ...]:
        """Parse ``api_keys``; raise ``ValueError`` naming the bad entry (not the digest).

        Parsing is a method rather than a validator so that a typo in one entry produces an
        error at the place that needs the keys (API start-up) with a precise message.
        """
        entries: list[ApiKeyEntry] = []
        for index, raw in enumerate(self.api_keys.split(",")):
            item = raw.strip()
            if not item:
                continue
            fields = item.split(":")
            if len(fields) != 4 or not all(fields):
                msg = (
                    f"CONCORD_API_KEYS entry #{index + 1} must be "
                    "'client_id:system:scope+scope:sha256hex'"
                )
                raise ValueError(msg)
            client_id, system, scopes, digest = fields
            digest = digest.lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                msg = (
                    f"CONCORD_API_KEYS entry for {client_id!r}: the last part must be the "
                    "64-character SHA-256 hex digest of the key"
                )
                raise ValueError(msg)
            entries.append(
                ApiKeyEntry(
                    client_id=client_id,
                    system=system,
                    scopes=frozenset(s for s in scopes.split("+") if s),
                    sha256_hex=digest,
                )
            )
        return tuple(entries)


def _secret_map(raw_entries: str, variable: str) -> dict[str, tuple[str, ...]]:
    """``name=secret[|older]`` entries, comma-separated (secrets may not hold ``,``/``|``)."""
    secrets: dict[str, tuple[str, ...]] = {}
    for index, raw in enumerate(raw_entries.split(",")):
        item = raw.strip()
        if not item:
            continue
        name, sep, values = item.partition("=")
        parsed = tuple(v.strip() for v in values.split("|") if v.strip())
        if not sep or not name.strip() or not parsed:
            msg = f"{variable} entry #{index + 1} must be 'name=secret[|old]'"
            raise ValueError(msg)
        secrets[name.strip()] = parsed
    return secrets

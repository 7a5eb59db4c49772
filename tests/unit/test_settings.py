"""Settings: CONCORD_* parsing and the translation to eventsourcing's POSTGRES_* keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from adapters.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own CONCORD_* / PG* variables out of these tests."""
    import os

    for key in list(os.environ):
        if key.startswith(("CONCORD_", "PG")):
            monkeypatch.delenv(key)


def test_defaults_need_no_environment() -> None:
    s = Settings()
    assert s.database_url is None
    assert s.nats_url is None
    assert s.data_dir == Path(".concord")
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.schema_name == "concord"
    assert (s.pool_size, s.max_overflow, s.lock_timeout_s) == (2, 10, 5)
    assert s.otel_exporter == "none"
    assert s.group_commit_max == 256
    assert s.nats_stream == "CONCORD_EVENTS"
    assert s.ownership_file is None


def test_env_prefix_is_read_on_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCORD_DATABASE_URL", "postgresql://u@db/x")
    monkeypatch.setenv("CONCORD_NATS_URL", "nats://n:4222")
    monkeypatch.setenv("CONCORD_PORT", "9001")
    monkeypatch.setenv("CONCORD_DATA_DIR", "/var/lib/concord")
    monkeypatch.setenv("CONCORD_OTEL_EXPORTER", "otlp")
    monkeypatch.setenv("CONCORD_GROUP_COMMIT_MAX", "64")
    monkeypatch.setenv("PORT", "1")  # unprefixed variables are not Concord's
    s = Settings()
    assert s.database_url == "postgresql://u@db/x"
    assert s.nats_url == "nats://n:4222"
    assert s.port == 9001
    assert s.data_dir == Path("/var/lib/concord")
    assert s.otel_exporter == "otlp"
    assert s.group_commit_max == 64


def test_schema_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCORD_SCHEMA", "hub")
    assert Settings().schema_name == "hub"
    assert Settings(schema_name="explicit").schema_name == "explicit"


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCORD_OTEL_EXPORTER", "zipkin")
    with pytest.raises(ValidationError):
        Settings()


def test_postgres_env_from_socket_url() -> None:
    url = "postgresql://postgres:@/concord?host=/tmp/pgsock"
    env = Settings(schema_name="s1", pool_size=2, max_overflow=3).postgres_env(url)
    assert env == {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": "concord",
        "POSTGRES_HOST": "/tmp/pgsock",
        "POSTGRES_PORT": "5432",
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "",
        "POSTGRES_SCHEMA": "s1",
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": "3",
        "POSTGRES_LOCK_TIMEOUT": "5",
    }


def test_postgres_env_from_tcp_url() -> None:
    env = Settings().postgres_env("postgresql://app:s%40cret@10.1.2.3:6543/hubdb")
    assert env["POSTGRES_HOST"] == "10.1.2.3"
    assert env["POSTGRES_PORT"] == "6543"
    assert env["POSTGRES_USER"] == "app"
    assert env["POSTGRES_PASSWORD"] == "s@cret"
    assert env["POSTGRES_DBNAME"] == "hubdb"
    assert env["POSTGRES_SCHEMA"] == "concord"


def test_postgres_env_from_keyword_dsn() -> None:
    env = Settings().postgres_env("host=/var/run/postgresql dbname=test user=postgres")
    assert (env["POSTGRES_HOST"], env["POSTGRES_DBNAME"]) == ("/var/run/postgresql", "test")
    assert env["POSTGRES_PASSWORD"] == ""


def test_db_functions_are_never_enabled() -> None:
    """POSTGRES_ENABLE_DB_FUNCTIONS writes into wrong tables and lets readers skip events."""
    env = Settings().postgres_env("postgresql://postgres@127.0.0.1/test")
    assert not any("DB_FUNCTIONS" in key for key in env)


def test_multi_host_is_refused() -> None:
    with pytest.raises(ValueError, match="multi-host"):
        Settings().postgres_env("postgresql://u@a:5432,b:5432/x")


def test_api_key_entries() -> None:
    digest = "ab" * 32
    s = Settings(api_keys=f"crm-sync:crm:read+write:{digest}, erp:erp:read:{digest.upper()}")
    first, second = s.api_key_entries()
    assert (first.client_id, first.system) == ("crm-sync", "crm")
    assert first.scopes == frozenset({"read", "write"})
    assert second.sha256_hex == digest
    assert Settings().api_key_entries() == ()
    with pytest.raises(ValueError, match="entry #1"):
        Settings(api_keys="just-a-name").api_key_entries()
    with pytest.raises(ValueError, match="SHA-256"):
        Settings(api_keys="c:crm:read:nothex").api_key_entries()


def test_each_nats_role_connects_with_its_identity(tmp_path: Path) -> None:
    """The relay publishes as the relay; every other role reads as the subscriber."""
    from adapters.bootstrap import Connections

    s = Settings(
        nats_relay_user="concord-relay",
        nats_relay_password="r-secret",
        nats_subscriber_user="concord-subscriber",
        nats_subscriber_password="s-secret",
    )
    connections = Connections(s)
    assert connections.nats_identity("relay") == {"user": "concord-relay", "password": "r-secret"}
    for role in ("subscribers", "operator", "replay"):
        assert connections.nats_identity(role) == {
            "user": "concord-subscriber",
            "password": "s-secret",
        }
    assert "r-secret" not in repr(s) and "s-secret" not in repr(s)
    assert Connections(Settings()).nats_identity("relay") == {}

    creds = tmp_path / "relay.creds"
    with_file = s.model_copy(update={"nats_relay_creds_file": creds})
    assert Connections(with_file).nats_identity("relay") == {"user_credentials": str(creds)}


def test_a_nats_tls_ca_file_gives_a_verifying_context(tmp_path: Path) -> None:
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from adapters.bootstrap import Connections

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    options = Connections(Settings(nats_tls_ca_file=ca)).nats_identity("relay")
    context = options["tls"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test ca"),),)]

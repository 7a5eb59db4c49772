"""Concord reaches a TLS NATS as the README says: a ``tls://`` URL and the CA file setting,
with the server's TLS block beside Concord's users."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.bootstrap import Connections
from adapters.embedded import find_nats_server
from adapters.nats.credentials import IdentityFolder
from adapters.nats.identities import Scope
from adapters.settings import Settings
from tests.conftest import run_sync


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    signer: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(
            issuer.subject
            if issuer
            else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        )
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), False)
    return builder.sign(signer, hashes.SHA256())


def _pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def tls_nats(tmp_path: Path) -> Iterator[tuple[str, Path, IdentityFolder]]:
    """A nats-server with a TLS block (certificate from a private CA) and Concord's users."""
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _cert("concord test ca", ca_key, None, ca_key)
    server = _cert("127.0.0.1", server_key, ca, ca_key)
    ca_file = _pem(tmp_path / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    cert_file = _pem(tmp_path / "server.pem", server.public_bytes(serialization.Encoding.PEM))
    key_file = _pem(
        tmp_path / "server-key.pem",
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    identities = IdentityFolder(tmp_path / "auth", rounds=4)
    identities.ensure()
    identities.render(tmp_path / "auth.conf", Scope())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "nats.conf"
    config.write_text(
        f'listen: "127.0.0.1:{port}"\n'
        f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
        'include "auth.conf"\n'
        f'tls {{ cert_file: "{cert_file}", key_file: "{key_file}" }}\n'
    )
    proc = subprocess.Popen(
        [str(find_nats_server()), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nats-server with TLS did not start"
                time.sleep(0.05)
        yield f"tls://127.0.0.1:{port}", ca_file, identities
    finally:
        proc.terminate()
        proc.wait(10)


def test_concord_connects_to_a_tls_nats_with_the_ca_file_setting(
    tls_nats: tuple[str, Path, IdentityFolder],
) -> None:
    url, ca_file, identities = tls_nats
    relay, subscriber = identities.credential("relay"), identities.credential("subscriber")
    assert relay is not None and subscriber is not None
    settings = Settings(
        nats_url=url,
        nats_tls_ca_file=ca_file,
        nats_relay_user=relay.user,
        nats_relay_password=relay.password,
        nats_subscriber_user=subscriber.user,
        nats_subscriber_password=subscriber.password,
    )

    async def scenario() -> tuple[bool, int]:
        nc = await Connections(settings).nats("relay")
        try:
            info = await nc.jetstream().account_info()
            return bool(nc.is_connected and nc.connected_url), int(info.streams)
        finally:
            await nc.close()

    async def without_the_ca() -> str:
        try:
            nc = await nats.connect(
                url, user=relay.user, password=relay.password, allow_reconnect=False
            )
        except Exception as refused:  # the server's certificate is not trusted
            return repr(refused)
        await nc.close()
        return "connected"

    connected, streams = run_sync(scenario())
    assert connected and streams == 0
    assert "CERTIFICATE_VERIFY_FAILED" in run_sync(without_the_ca())

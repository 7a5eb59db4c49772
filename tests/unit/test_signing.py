"""``Concord-Signature``: what a receiver accepts and refuses, and how secrets are configured."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from adapters.connectors.signing import sign, verify
from adapters.settings import Settings

BODY = b'{"event_id": "e1", "version": 1}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    header = sign(BODY, ["s3cret"], now=1_700_000_000)
    expected = hmac.new(b"s3cret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_receiver_refuses_forged_tampered_expired_and_unsigned() -> None:
    now = 1_700_000_000.0
    good = sign(BODY, ["right"], now=now)
    assert verify(good, BODY, ["right"], now=now + 10)
    assert not verify(sign(BODY, ["wrong"], now=now), BODY, ["right"], now=now)
    assert not verify(good, BODY + b" ", ["right"], now=now)
    assert not verify(good, BODY, ["right"], now=now + 301)
    assert not verify(good, BODY, ["right"], now=now - 301)
    for broken in (None, "", "t=abc,v1=00", "v1=00", f"t={int(now)}", "garbage"):
        assert not verify(broken, BODY, ["right"], now=now)


def test_rotation_signs_with_every_active_secret() -> None:
    now = 1_700_000_000.0
    header = sign(BODY, ["new", "old"], now=now)
    assert header.count("v1=") == 2
    assert verify(header, BODY, ["old"], now=now)  # receiver not switched yet
    assert verify(header, BODY, ["new"], now=now)  # receiver already switched
    assert not verify(sign(BODY, ["new"], now=now), BODY, ["old"], now=now)


def test_target_secrets_setting_parses_rotation_and_names_bad_entries() -> None:
    settings = Settings(target_secrets="erp=new|old, crm=one")
    assert settings.target_secret_map() == {"erp": ("new", "old"), "crm": ("one",)}
    assert "new" not in repr(settings)
    with pytest.raises(ValueError, match="entry #2") as bad:
        Settings(target_secrets="erp=x,crm").target_secret_map()
    assert "x" not in str(bad.value).replace("#", "")

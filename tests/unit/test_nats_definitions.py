"""The stream definition shipped in ops/nats is the one the relay creates (no drift)."""

from __future__ import annotations

import json
from pathlib import Path

from adapters.nats.subjects import Subjects, stream_config

OPS = Path(__file__).resolve().parents[2] / "ops" / "nats"


def test_stream_definition_file_matches_the_relay() -> None:
    shipped = json.loads((OPS / "streams" / "CONCORD_EVENTS.json").read_text())
    assert shipped == stream_config("CONCORD_EVENTS", Subjects()).as_dict()
    assert shipped["storage"] == "file" and shipped["deny_delete"] is True
    assert shipped["subjects"] == ["concord.v1.>"]

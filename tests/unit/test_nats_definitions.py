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


def test_consumer_definition_files_match_the_subscribers() -> None:
    from adapters.nats.registry import DECLARATIONS, build_specs
    from adapters.nats.subscriber import consumer_config
    from adapters.settings import Settings

    targets = ",".join(f"{d.name}=http://{d.name}.invalid/events" for d in DECLARATIONS)
    specs = build_specs(Settings(targets=targets))
    assert set(specs) == {d.name for d in DECLARATIONS}
    for name, spec in specs.items():
        shipped = json.loads((OPS / "consumers" / f"{name}.json").read_text())
        assert shipped == consumer_config(spec).as_dict(), name
        assert shipped["ack_policy"] == "explicit"

"""OpenTelemetry counters of what subscribers do, labelled by subscriber.

Why counters through the OpenTelemetry *API* only: the process decides whether a meter
provider exists (the CLI may install an exporter); until then these instruments are no-ops
and cost next to nothing on the delivery path. Lag is a gauge-like reading better taken on
demand (``adapters.nats.lag``) than sampled here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry import metrics
from opentelemetry.metrics import Counter

__all__ = ["SubscriberMetrics"]


@dataclass
class SubscriberMetrics:
    """The instruments plus in-process totals (handy for tests, logs and benchmarks)."""

    subscriber: str
    delivered: int = 0
    failed: int = 0
    dead_lettered: int = 0
    parked: int = 0
    released: int = 0
    skipped: int = 0
    _attrs: dict[str, str] = field(default_factory=dict)
    _counters: dict[str, Counter] = field(default_factory=dict)

    def __post_init__(self) -> None:
        meter = metrics.get_meter("concord.subscriber")
        self._attrs = {"subscriber": self.subscriber}
        for name, text in (
            ("delivered", "events a target confirmed"),
            ("failed", "failed delivery attempts (each retry counts)"),
            ("dead_lettered", "events turned into dead letters"),
            ("parked", "events held behind a failing event of the same aggregate"),
        ):
            self._counters[name] = meter.create_counter(
                f"concord.subscriber.{name}", unit="{event}", description=text
            )

    def count(self, name: str, amount: int = 1) -> None:
        setattr(self, name, getattr(self, name) + amount)
        counter = self._counters.get(name)
        if counter is not None:
            counter.add(amount, self._attrs)

"""Rate limits per API client and, for failed authentication, per remote address.

Why token buckets in each worker process rather than a shared counter: a limit exists to stop
one runaway or hostile client from taking the hub's capacity from the others, and a bucket
per worker does that without a database round trip on every request. With ``--workers N``
a client may reach up to N times the configured rate in total (documented in the README).

Why failed authentication is limited per address: a client without a valid key has no
identity to count against, and an address that keeps failing is guessing keys or is badly
misconfigured; either way it should not cost a hash and a log line at full speed. Once an
address is over its limit, every request from it that needs a key answers 429 until the
bucket refills, so a throttled guesser learns nothing (not even from a right guess).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from adapters.settings import Settings

__all__ = ["Limited", "RateLimiter", "RequestLimits"]

#: Most buckets kept; the least recently used is dropped first (a dropped bucket is full
#: again next time, which only ever errs towards letting a request through).
MAX_BUCKETS = 10_000


@dataclass(frozen=True)
class Limited:
    """A refused request: seconds until one is allowed again, and the limit's terms."""

    retry_after_s: int
    rate_per_s: float
    burst: int


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by key: ``burst`` requests at once, refilled at ``rate_per_s``.

    ``rate_per_s <= 0`` turns the limiter off. Thread-safe (sync routes and dependencies run
    on several threads).
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(1, burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0

    def take(self, key: str) -> Limited | None:
        """Spend one token of ``key``'s bucket; ``Limited`` if there is none."""
        if not self.enabled:
            return None
        with self._lock:
            bucket = self._current(key)
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return None
            return self._refusal(bucket)

    def check(self, key: str) -> Limited | None:
        """``Limited`` if ``key`` has no token left, without spending one."""
        if not self.enabled:
            return None
        with self._lock:
            if key not in self._buckets:
                return None
            bucket = self._current(key)
            return None if bucket.tokens >= 1 else self._refusal(bucket)

    def _current(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.burst), updated=now)
            self._buckets[key] = bucket
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate_per_s)
            bucket.updated = now
        return bucket

    def _refusal(self, bucket: _Bucket) -> Limited:
        wait = (1 - bucket.tokens) / self.rate_per_s
        return Limited(max(1, math.ceil(wait)), self.rate_per_s, self.burst)


@dataclass(frozen=True)
class RequestLimits:
    """The two limiters every authenticated route passes: per client, and per failing address."""

    clients: RateLimiter
    failed_auth: RateLimiter

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        return cls(
            clients=RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
            failed_auth=RateLimiter(settings.auth_failure_limit_per_s, settings.auth_failure_burst),
        )

    @classmethod
    def off(cls) -> RequestLimits:
        return cls(RateLimiter(0, 1), RateLimiter(0, 1))

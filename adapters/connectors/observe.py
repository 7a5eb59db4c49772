"""Observe-only delivery: everything is decided and recorded, nothing is sent.

Why: onboarding a live estate (Concord beside an integration that still writes to the ERP),
or an audit ("what would Concord have sent to billing last month?"), needs the whole hub
running — inbound, the process manager, the subscribers with their ordering, holds and
replays — with the last hop cut. ``CONCORD_OUTBOUND=erp:observe`` wraps that target's
connector in :class:`ObservingConnector`: each event the target would have received is
written to ``concord_observed_deliveries`` (target, event, aggregate, the envelope with its
personal fields withheld: the connector sees them opened, and a table outside the stores is
out of an erasure's reach) and acknowledged as delivered. Switching the target to ``send``
later does not resend them (they were acknowledged); ``concord subscribers replay`` sends a
chosen window when wanted.

The connector it wraps is kept (and closed) but never called: no request leaves Concord.
"""

from __future__ import annotations

from typing import Any

import orjson
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from adapters.connectors.port import Connector, TransientDeliveryError
from hub.application.personal import withhold_envelope

__all__ = ["ObservingConnector"]


class ObservingConnector(Connector):
    """Records what ``target`` would receive instead of sending it (once per event)."""

    def __init__(
        self, target: str, wrapped: Connector, pool: AsyncConnectionPool[Any], schema: str
    ) -> None:
        self.target = target
        self.wrapped = wrapped
        self._pool = pool
        self._schema = schema

    async def deliver(self, envelope: dict[str, Any], idempotency_key: str) -> None:
        if not self.wrapped.wants(envelope):
            return  # the target would not have received it either
        try:
            async with self._pool.connection() as conn:
                await conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (target, event_id, event_type, aggregate, aggregate_id, "
                        "envelope) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
                    ).format(sql.Identifier(self._schema, "concord_observed_deliveries")),
                    (
                        self.target,
                        idempotency_key,
                        str(envelope.get("type", "")),
                        str(envelope.get("aggregate", "")),
                        str(envelope.get("aggregate_id", "")),
                        orjson.dumps(withhold_envelope(envelope)).decode(),
                    ),
                )
        except Exception as failed:  # PostgreSQL away: the subscriber retries later
            raise TransientDeliveryError(
                f"cannot record the observed delivery: {failed!r}"
            ) from failed

    async def aclose(self) -> None:
        await self.wrapped.aclose()

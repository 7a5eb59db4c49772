"""Salesforce's way in: Change Data Capture messages, as a CometD or Pub/Sub bridge posts them.

Salesforce pushes CDC to subscribers (CometD Streaming API or the Pub/Sub gRPC API), not to
URLs, so a small bridge subscribes to ``/data/ChangeEvents`` and POSTs every message, as
received (one message or a JSON array), to ``/v1/webhooks/salesforce`` with
``X-Concord-Signature: <hex HMAC-SHA256 of the raw body>`` under the bridge's shared secret
(README, "Salesforce").

* Dedupe: one source event per record a message names, id
  ``<transactionKey>:<sequenceNumber>:<18-char record id>`` (see :func:`cdc.event_id`).
* Order: ``commitTimestamp`` (epoch ms) is each event's source time; the mirrors order
  fields by commit time and sequence number, so a late message never overwrites newer
  values and the hub records it as stale.
* Ids: normalised to 18 characters (:mod:`adapters.salesforce.ids`).

What each object does:

* **Account** → customer ``register`` (first sight, unless matched to a known customer:
  then ``link`` + ``change_details``, or a review) / ``change_details`` (changed CRM
  fields only), ``ParentId`` → ``parent_customer_id`` (a child waits for its parent);
* **Opportunity**, **OpportunityLineItem** → one order ``place`` when the opportunity is
  won and complete (:mod:`adapters.salesforce.deals`);
* **Product2** → mirrored only: its ``Name`` describes lines; a line's SKU is the product
  catalogue's mapping of its ``Product2Id`` (:mod:`adapters.inbound.products`), the
  catalogue is not the CRM's to define;
* **Contract** → mirrored only: contracts are billing's (adapters/ownership.yaml), a CRM
  contract record is a sales document, not the subscription Concord tracks;
* other objects, gap events (``GAP_*``: re-read the record and send it as a CREATE),
  wildcard ``recordIds`` and Concord's own echoes (``changeOrigin`` naming the configured
  client) are answered 202 and logged as ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adapters.inbound.mirror import MirrorUpdate
from adapters.inbound.model import Known, SourceEvent, Translation
from adapters.inbound.signatures import verify_body_hmac
from adapters.inbound.source import Incoming
from adapters.salesforce import accounts, deals
from adapters.salesforce.cdc import WILDCARD, Change, change_in, changes, jsonable, messages

CRM = "crm"


@dataclass(frozen=True)
class SalesforceAdapter:
    """``POST /v1/webhooks/salesforce``. ``echo_client`` is the ``client=`` Concord sends
    in ``Sforce-Call-Options`` on its own writes: changes it made are not heard back."""

    echo_client: str = "concord"
    name: str = "salesforce"
    system: str = CRM

    def verify(self, incoming: Incoming, secrets: Sequence[str]) -> str:
        return verify_body_hmac(incoming, secrets)

    def split(self, incoming: Incoming) -> list[SourceEvent]:
        events: list[SourceEvent] = []
        for message in messages(incoming.body):
            for change in changes(message.document, message.where):
                events.append(
                    SourceEvent(
                        event_id=change.event_id,
                        event_type=f"{change.entity}.{change.change_type}",
                        document=message.document,
                        raw=message.raw,
                        occurred_at=change.occurred_at,
                    )
                )
        return events

    def mirror(self, event: SourceEvent) -> list[MirrorUpdate]:
        """The record's reported fields (DELETE: marked deleted); a line item's CREATE
        also lists the line under its opportunity."""
        change = _change(event)
        if not change.followed or change.gap or WILDCARD in change.record_id:
            return []
        fields = jsonable(change.fields)
        if change.change_type == "DELETE":
            fields = {"IsDeleted": True}
        elif change.change_type in ("CREATE", "UNDELETE"):
            fields["IsDeleted"] = False
        found = [MirrorUpdate(change.entity, change.record_id, fields, change.order)]
        opportunity = fields.get("OpportunityId")
        if change.entity == "OpportunityLineItem" and opportunity:
            listed = {change.record_id: True}
            found.append(MirrorUpdate(deals.LINES, str(opportunity), listed, change.order))
        return found

    def translate(self, event: SourceEvent, known: Known) -> Translation:
        change = _change(event)
        if not change.followed:
            return Translation.ignore(f"Concord does not follow Salesforce {change.entity}")
        if change.gap:
            return Translation.ignore(
                f"{change.change_type} for {change.record_id}: a gap event carries no fields; "
                "the bridge re-reads the record and sends it as a CREATE"
            )
        if WILDCARD in change.record_id:
            return Translation.ignore(
                f"{change.entity} {change.change_type} names records {change.record_id}: "
                "re-read them and send each as a CREATE"
            )
        origin = change.header.change_origin or ""
        if f"client={self.echo_client}" in origin.split(";"):
            return Translation.ignore(f"an echo of Concord's own write ({origin})")
        if change.entity == "Account":
            return accounts.translate(change, known)
        if change.entity == "Opportunity":
            return deals.opportunity(change, known)
        if change.entity == "OpportunityLineItem":
            return deals.line_item(change, known)
        return Translation.ignore(
            f"{change.entity} {change.record_id} mirrored (it informs order lines; it causes "
            "no canonical command itself)"
        )


def _change(event: SourceEvent) -> Change:
    """The event's change again, from its exact bytes (numbers as Decimal); the event id
    names the record of a message that names several."""
    return change_in(event.raw, event.event_id.rsplit(":", 1)[1])

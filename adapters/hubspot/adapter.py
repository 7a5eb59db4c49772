"""HubSpot's way in: v3 signature, the event array, record mirrors and the pure translator.

HubSpot (the CRM: it owns customer names, domains, hierarchy and orders,
adapters/ownership.yaml) sends batches of thin events: a creation carries no properties, a
property change exactly one. Each event is first merged into the mirror of the record it
names (per property, newest ``occurredAt`` wins), and translated from the whole merged
record:

* ``company.*`` — the customer of the company (:mod:`adapters.hubspot.companies`);
* ``deal.*``, ``line_item.*`` — the order of a closed-won deal (:mod:`adapters.hubspot.deals`);
* ``*.associationChange`` — deal↔company, deal↔line item and parent↔child company
  associations, mirrored on both records, then translated like a property change.

Changes Concord's own HubSpot integration made (``sourceId`` naming its app id) are merged
into the mirror but cause nothing: they are echoes of what the hub already holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from adapters.hubspot.companies import company
from adapters.hubspot.deals import COMPANY, DEAL, LINE_ITEM, DealRules, deal, deal_of_line_item
from adapters.hubspot.schemas import AS_OF, HubSpotDelivery, HubSpotEvent
from adapters.hubspot.signature import verify_v3
from adapters.inbound.convert import from_epoch_millis
from adapters.inbound.mirror import MirrorUpdate
from adapters.inbound.model import Known, SourceEvent, Translation
from adapters.inbound.source import Incoming, Malformed, parse_model

OBJECTS = ("company", "deal", "line_item")
FOLLOWED = ("creation", "propertyChange", "associationChange")

#: associationType (and the documented associationTypeId) → (from object, to object).
ASSOCIATIONS: dict[str | int, tuple[str, str]] = {
    "DEAL_TO_COMPANY": ("deal", "company"),
    "COMPANY_TO_DEAL": ("company", "deal"),
    "DEAL_TO_LINE_ITEM": ("deal", "line_item"),
    "LINE_ITEM_TO_DEAL": ("line_item", "deal"),
    "PARENT_TO_CHILD_COMPANY": ("parent", "child"),
    "CHILD_TO_PARENT_COMPANY": ("child", "parent"),
    5: ("deal", "company"),
    341: ("deal", "company"),
    19: ("deal", "line_item"),
    20: ("line_item", "deal"),
    13: ("parent", "child"),
    14: ("child", "parent"),
}


@dataclass(frozen=True)
class HubSpotAdapter:
    """``POST /v1/webhooks/hubspot``.

    ``public_url`` is the target URL configured in the HubSpot app (signed by HubSpot; set
    it when a proxy changes the URL Concord sees); ``app_id`` is Concord's own HubSpot app,
    whose writes come back as echoes; ``rules`` say what a won deal is."""

    public_url: str | None = None
    app_id: str | None = None
    rules: DealRules = field(default_factory=DealRules)
    name: str = "hubspot"
    system: str = "crm"

    def verify(self, incoming: Incoming, secrets: Sequence[str]) -> str:
        return verify_v3(incoming, secrets, self.public_url)

    def split(self, incoming: Incoming) -> list[SourceEvent]:
        try:
            document = orjson.loads(incoming.body)
        except orjson.JSONDecodeError as bad:
            raise Malformed(f"the body is not JSON: {bad}", "body") from None
        if not isinstance(document, list):
            raise Malformed("a HubSpot delivery is a JSON array of events", "body")
        events = parse_model(HubSpotDelivery, document, "body").root
        for index, event in enumerate(events):
            _check(event, f"body.{index}")
        return [
            SourceEvent(
                # eventId is unique within a subscription of a portal, not more (HubSpot
                # promises no more): the dedupe key names all three.
                event_id=f"{e.portal_id}:{e.subscription_id}:{e.event_id}",
                event_type=e.subscription_type,
                document=raw,
                raw=orjson.dumps(raw),
                occurred_at=from_epoch_millis(e.occurred_at, field=f"body.{i}.occurredAt"),
            )
            for i, (e, raw) in enumerate(zip(events, document, strict=True))
        ]

    def mirror(self, event: SourceEvent) -> list[MirrorUpdate] | None:
        parsed = _parse(event)
        if parsed.object_name not in OBJECTS:
            return None
        if parsed.change == "associationChange":
            return _association_updates(parsed)
        if parsed.change not in ("creation", "propertyChange"):
            return None
        record = _object_id(parsed)
        fields: dict[str, Any]
        if parsed.change == "creation":
            fields = {"hs_object_id": record}
        else:
            fields = {str(parsed.property_name): parsed.property_value}
        fields[AS_OF] = parsed.occurred_at
        return [MirrorUpdate(parsed.object_name, record, fields, parsed.order)]

    def translate(self, event: SourceEvent, known: Known) -> Translation:
        parsed = _parse(event)
        if parsed.object_name not in OBJECTS or parsed.change not in FOLLOWED:
            return Translation.ignore(
                f"Concord does not follow HubSpot {parsed.subscription_type} events"
            )
        if self._echo(parsed):
            return Translation.ignore(
                f"an echo of Concord's own HubSpot integration (sourceId {parsed.source_id})"
            )
        assert event.occurred_at is not None  # split always sets it
        if parsed.change == "associationChange":
            ends = _association(parsed)
            if ends is None:
                return Translation.ignore(
                    f"Concord does not follow {parsed.association_type} associations"
                )
            if "child" in ends:
                return company(ends["child"], known)
            return deal(ends["deal"], known, self.rules, event.occurred_at)
        record = _object_id(parsed)
        if parsed.object_name == "company":
            return company(record, known)
        if parsed.object_name == "deal":
            return deal(record, known, self.rules, event.occurred_at)
        owner = deal_of_line_item(record, known)
        if owner is None:
            return Translation.ignore(
                f"line item {record} is not associated with a deal (yet): the deal-to-line-"
                "item association brings it in"
            )
        return deal(owner, known, self.rules, event.occurred_at)

    def _echo(self, event: HubSpotEvent) -> bool:
        """``sourceId`` names the app that made an integration's change (``"123456"`` or
        ``"appId:123456"`` depending on the change source)."""
        if not self.app_id or not event.source_id:
            return False
        return event.source_id.rsplit(":", 1)[-1].strip() == self.app_id


def _check(event: HubSpotEvent, where: str) -> None:
    """Refuse, at split time and naming the element, what the followed types need but the
    event lacks (so mirroring and translating never meet a half event)."""
    if event.object_name not in OBJECTS:
        return
    if event.change == "associationChange":
        if _kind(event) is not None:
            for name, value in (
                ("fromObjectId", event.from_object_id),
                ("toObjectId", event.to_object_id),
            ):
                if value is None:
                    raise Malformed(
                        f"{where}.{name}: an association change names both ends", f"{where}.{name}"
                    )
        return
    if event.change in ("creation", "propertyChange") and event.object_id is None:
        raise Malformed(
            f"{where}.objectId: a {event.subscription_type} event names its object",
            f"{where}.objectId",
        )
    if event.change == "propertyChange" and not event.property_name:
        raise Malformed(
            f"{where}.propertyName: a property change names its property", f"{where}.propertyName"
        )


def _kind(event: HubSpotEvent) -> tuple[str, str] | None:
    return ASSOCIATIONS.get(event.association_type or "") or ASSOCIATIONS.get(
        event.association_type_id if event.association_type_id is not None else -1
    )


def _parse(event: SourceEvent) -> HubSpotEvent:
    return parse_model(HubSpotEvent, event.document, "body")


def _object_id(event: HubSpotEvent) -> str:
    if event.object_id is None:
        raise Malformed(f"a {event.subscription_type} event names its objectId", "body.objectId")
    return str(event.object_id)


def _association(event: HubSpotEvent) -> dict[str, str] | None:
    """Both ends of an association event by role (``{"deal": …, "company": …}``)."""
    kind = _kind(event)
    if kind is None:
        return None
    if event.from_object_id is None or event.to_object_id is None:
        raise Malformed("an association change names fromObjectId and toObjectId", "body")
    return {kind[0]: str(event.from_object_id), kind[1]: str(event.to_object_id)}


def _association_updates(event: HubSpotEvent) -> list[MirrorUpdate] | None:
    ends = _association(event)
    if ends is None:
        return None
    removed = event.association_removed
    order, at = event.order, {AS_OF: event.occurred_at}
    if "child" in ends:
        parent = "" if removed else ends["parent"]
        return [
            MirrorUpdate("company", ends["child"], {"hs_parent_company_id": parent} | at, order)
        ]
    if "company" in ends:
        company_id = "" if removed else ends["company"]
        return [MirrorUpdate("deal", ends["deal"], {COMPANY: company_id} | at, order)]
    line = ends["line_item"]
    return [
        MirrorUpdate(
            "deal", ends["deal"], {LINE_ITEM + line: str(not removed).lower()} | at, order
        ),
        MirrorUpdate("line_item", line, {DEAL: "" if removed else ends["deal"]} | at, order),
    ]

"""Which canonical events are CRM milestones, and what each writes on the Opportunity.

Why a separate table: the CRM receives status milestones only (issue 9: "CRM gets status
milestones"), never orders, invoices or payments themselves, so the whole mapping from the
hub's events to the CRM's fields is one reviewable place:

===============================================  ==========================================
``OrderPlaced``, ``OrderValidated``              status Ordered, ``Concord_Ordered_At__c``
``OrderRejected``                                status Rejected, reason = the reasons
``OrderAcceptedByErp``                           Accepted by ERP, ``Concord_ERP_Accepted_At__c``,
                                                 ``Concord_ERP_Order_Number__c``
``ContractActivated``                            Active, ``Concord_Activated_At__c``
``ContractResumed``                              Active again (after a suspension)
``InvoiceIssued``                                Invoiced, ``Concord_First_Invoice_At__c``
``InvoicePaymentApplied`` / ``PaymentApplied``   Paid, ``Concord_Paid_At__c`` (invoice paid)
``OrderCancelled``, ``ContractCancelled``        Cancelled, reason
``ContractSuspended``                            Suspended, reason
``OrderHeld``                                    On hold, reason (a compensation: billing
                                                 refused the subscription, say)
``OrderReleased``                                back to the furthest milestone it reached
===============================================  ==========================================

Milestone times are the events' business times (the source's time, else when Concord recorded
it) and the earliest one wins: events of different aggregates (an order, its contract, its
invoices) are delivered in no particular order between them, and "first invoice" is the
earliest invoice's. The status only moves forward along Ordered → Accepted by ERP → Active →
Invoiced → Paid; Rejected and Cancelled are final, Suspended holds until Active again and
On hold until the order is released (then the status is the furthest milestone whose time
the opportunity shows).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

__all__ = ["FIELD", "Milestone", "changes", "milestone_of"]

FIELD = {
    "status": "Concord_Status__c",
    "reason": "Concord_Status_Reason__c",
    "ordered": "Concord_Ordered_At__c",
    "erp_accepted": "Concord_ERP_Accepted_At__c",
    "erp_number": "Concord_ERP_Order_Number__c",
    "activated": "Concord_Activated_At__c",
    "first_invoice": "Concord_First_Invoice_At__c",
    "paid": "Concord_Paid_At__c",
}
_PROGRESS = {"Ordered": 1, "Accepted by ERP": 2, "Active": 3, "Invoiced": 4, "Paid": 5}
_FINAL = frozenset({"Rejected", "Cancelled"})
_HOLDS = frozenset({"Suspended", "On hold"})
#: The status of a released order: worked out from the opportunity's milestone times.
RELEASED = "released"
_REACHED = (
    ("paid", "Paid"),
    ("first_invoice", "Invoiced"),
    ("activated", "Active"),
    ("erp_accepted", "Accepted by ERP"),
)
_MAX_REASON = 32_000


@dataclass(frozen=True)
class Milestone:
    """What one event tells the CRM: a status (with its reason), a milestone time field,
    other values (the ERP order number)."""

    status: str
    reason: str | None = None
    time_field: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    resumes: bool = False


def milestone_of(event_type: str, data: dict[str, Any]) -> Milestone | None:
    """The milestone an event type is, or None (the CRM does not hear of it)."""
    if event_type in ("OrderPlaced", "OrderValidated"):
        return Milestone("Ordered", time_field=FIELD["ordered"])
    if event_type == "OrderRejected":
        reasons = "; ".join(str(r) for r in data.get("reasons") or []) or "rejected"
        return Milestone("Rejected", reason=reasons[:_MAX_REASON])
    if event_type == "OrderAcceptedByErp":
        number = {FIELD["erp_number"]: str(data["erp_order_number"])}
        return Milestone("Accepted by ERP", time_field=FIELD["erp_accepted"], values=number)
    if event_type == "ContractActivated":
        return Milestone("Active", time_field=FIELD["activated"])
    if event_type == "ContractResumed":
        return Milestone("Active", resumes=True)
    if event_type == "InvoiceIssued":
        return Milestone("Invoiced", time_field=FIELD["first_invoice"])
    if event_type in ("InvoicePaymentApplied", "PaymentApplied"):
        return Milestone("Paid", time_field=FIELD["paid"])
    if event_type == "OrderCancelled":
        return Milestone("Cancelled", reason=str(data.get("reason") or "cancelled"))
    if event_type == "ContractCancelled":
        reason = data.get("reason") or "contract cancelled"
        return Milestone("Cancelled", reason=f"{reason} (effective {data.get('effective_date')})")
    if event_type == "ContractSuspended":
        return Milestone("Suspended", reason=f"suspended from {data.get('effective_date')}")
    if event_type == "OrderHeld":
        return Milestone("On hold", reason=str(data.get("reason") or "on hold")[:_MAX_REASON])
    if event_type == "OrderReleased":
        return Milestone(RELEASED, resumes=True)
    return None


def changes(milestone: Milestone, at: datetime, current: dict[str, Any]) -> dict[str, Any]:
    """The Opportunity fields to PATCH so it shows ``milestone`` (only what differs: a
    repeated delivery finds nothing to change)."""
    if milestone.status == RELEASED:
        if current.get(FIELD["status"]) != "On hold":
            return {}  # not held (or released twice): nothing to lift
        reached = next((s for f, s in _REACHED if current.get(FIELD[f])), "Ordered")
        milestone = replace(milestone, status=reached)
    wanted: dict[str, Any] = dict(milestone.values)
    if milestone.time_field is not None:
        known = _time(current.get(milestone.time_field))
        if known is None or at < known:
            wanted[milestone.time_field] = crm_time(at)
    if _status_moves(milestone, current.get(FIELD["status"])):
        wanted[FIELD["status"]] = milestone.status
        wanted[FIELD["reason"]] = milestone.reason
    return {name: value for name, value in wanted.items() if current.get(name) != value}


def _status_moves(milestone: Milestone, current: Any) -> bool:
    new = milestone.status
    if current is None or current == new:
        return True
    if current in _FINAL:
        return False
    if new in _FINAL:
        return True
    if new in _HOLDS:
        return True
    if current in _HOLDS:
        return milestone.resumes
    return _PROGRESS.get(new, 0) >= _PROGRESS.get(str(current), 0)


def crm_time(moment: datetime) -> str:
    """A Salesforce datetime, UTC with milliseconds (``2026-03-31T10:00:00.000Z``)."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

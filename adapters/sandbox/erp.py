"""The ERP sandbox: NetSuite's SuiteTalk REST record API, stateful, with its limits.

Why a hand-written NetSuite: no maintained stand-in exists, and the things the
quote-to-cash flow must survive are NetSuite's own — create answers ``204`` with the id only
in ``Location``; ``PUT …/eid:<externalId>`` upserts so a retried call never makes a second
customer or sales order; the account-wide concurrency limit answers ``429
CONCURRENCY_LIMIT_EXCEEDED``; tax is computed per line and its engine can fail.

API (under ``/services/rest/record/v1``; record types ``customer``, ``salesOrder``,
``invoice``, ``customerPayment``, ``creditMemo``, ``inventoryItem``, ``serviceSaleItem``,
``nonInventorySaleItem``)::

    POST   /<type>                    create → 204, Location …/<type>/<internal id>
    GET    /<type>?q=externalId IS X  list (``<field> IS <value>``, limit, offset)
    GET    /<type>/<id>|eid:<x>       the record (?expandSubResources=true: sublists)
    PATCH  /<type>/<id>|eid:<x>       update → 204 (a given sublist replaces the old one)
    PUT    /<type>/eid:<x>            upsert → 204 + Location: creates or updates, never two

Admin (besides the base's faults, records, calls, webhooks, reset)::

    POST /_admin/tax          {"fail": true, "message": "…", "codes": {"US-CA": 7.25}}
    POST /_admin/concurrency  {"limit": 5}

After every save the record is pushed to Concord as Concord's SuiteScript user-event script
does (adapters/netsuite/adapter.py): ``{"eventId", "recordType", "action", "occurredAt",
"record"}`` with the record expanded, signed ``X-Concord-Signature: <hex HMAC-SHA256 of the
raw body>`` with the secret given to the sandbox.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from adapters.connectors.exact_json import dumps_exact
from adapters.inbound.signatures import CONCORD_SIGNATURE, body_hmac_hex
from adapters.sandbox.base import Sandbox
from adapters.sandbox.erp_records import (
    CURRENCIES,
    RECORD_TYPES,
    Books,
    NsError,
    TaxTable,
    invalid,
    money,
    now_iso,
    rounded,
)

__all__ = ["PREFIX", "ErpSandbox", "build", "ns_json"]

PREFIX = "/services/rest/record/v1"
_EID = re.compile(r"^eid:([A-Za-z0-9_\-.:@]{1,255})$")
_QUERY = re.compile(r'^\s*(\w+)\s+IS\s+"?([^"]*)"?\s*$', re.IGNORECASE)
_MAX_BODY = 4 * 1024 * 1024
_TITLES = {
    400: ("Bad Request", "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.1"),
    401: ("Unauthorized", "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.2"),
    403: ("Forbidden", "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.4"),
    404: ("Not Found", "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.5"),
    405: (
        "Method Not Allowed",
        "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.6",
    ),
    429: ("Too Many Requests", "https://tools.ietf.org/html/rfc6585#section-4"),
    500: (
        "Internal Server Error",
        "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.5.1",
    ),
    503: (
        "Service Unavailable",
        "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.5.4",
    ),
    504: ("Gateway Timeout", "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.5.5"),
}
CONCURRENCY_MESSAGE = "Concurrent request limit exceeded. Request blocked."


ns_json = dumps_exact
"""JSON with every ``Decimal`` written as a JSON number exactly (``107.25``, not a float)."""


def _answer(document: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        ns_json(document),
        status,
        dict(headers or {}),
        media_type="application/vnd.oracle.resource+json; type=singular",
    )


class ErpSandbox(Sandbox):
    """NetSuite. ``secret`` signs the push-backs; ``concurrency`` is the account's limit of
    requests in flight; ``items`` seeds the item master (internal id → SKU / ``itemId``)."""

    name = "erp"

    def __init__(
        self,
        *,
        secret: str | None = None,
        concurrency: int = 5,
        tax_codes: Mapping[str, Decimal] | None = None,
        items: Mapping[str, str] | None = None,
        account: str = "1234567",
    ) -> None:
        super().__init__()
        self.account = account
        self.concurrency = concurrency
        self.in_flight = 0
        self.refused_for_concurrency = 0
        self.tax = TaxTable() if tax_codes is None else TaxTable(codes=dict(tax_codes))
        self.books = Books(self._find, self.tax)
        self._seed_items = dict(items or {})
        self._seed()
        if secret is not None:
            self.webhooks.signer = lambda raw: {CONCORD_SIGNATURE: body_hmac_hex(secret, raw)}

    # -- the base's hooks ---------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{PREFIX}/{{kind}}", self._collection, methods=["GET", "POST"]),
            Route(f"{PREFIX}/{{kind}}/{{key}}", self._one, methods=["GET", "PATCH", "PUT"]),
            Route("/_admin/tax", self._admin_tax, methods=["GET", "POST"]),
            Route("/_admin/concurrency", self._admin_concurrency, methods=["GET", "POST"]),
        ]

    def app(self) -> Starlette:
        app = super().app()
        app.add_middleware(_ConcurrencyLimit, sandbox=self)  # outermost: counts held calls
        return app

    def error(
        self,
        status: int,
        code: str,
        message: str,
        retry_after: float | None = None,
        *,
        path: str | None = None,
    ) -> Response:
        """NetSuite's error: ``{type, title, status, o:errorDetails: [{detail, o:errorCode,
        o:errorPath}]}`` (an injected fault too)."""
        title, kind = _TITLES.get(status, ("Error", _TITLES[500][1]))
        detail: dict[str, Any] = {"detail": message, "o:errorCode": code}
        if path is not None:
            detail["o:errorPath"] = path
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = (
                str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
            )
        body = {"type": kind, "title": title, "status": status, "o:errorDetails": [detail]}
        return Response(
            orjson.dumps(body),
            status,
            headers,
            media_type="application/vnd.oracle.resource+json; type=error",
        )

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.books.counters.clear()
            self.tax.fail = False
            self._seed()

    # -- reads --------------------------------------------------------------------------------
    def by_external_id(self, kind: str, external_id: str) -> dict[str, Any] | None:
        """The record of ``kind`` with this ``externalId`` (tests, and upserts)."""
        with self.lock:
            for record in self.records.get(kind, {}).values():
                if record.get("externalId") == external_id:
                    return copy.deepcopy(record)
        return None

    def render(self, kind: str, record: Mapping[str, Any], expand: bool = True) -> dict[str, Any]:
        """The record as SuiteTalk REST shows it: ``links`` on it, its references and its
        sublists; sublists as links only unless expanded."""
        base = f"https://{self.account}.suitetalk.api.netsuite.com{PREFIX}"
        shown: dict[str, Any] = {
            "links": [{"rel": "self", "href": f"{base}/{kind}/{record['id']}"}]
        }
        for name, value in record.items():
            if name.startswith("_"):
                continue
            if isinstance(value, dict) and "items" in value:
                sub: dict[str, Any] = {
                    "links": [{"rel": "self", "href": f"{base}/{kind}/{record['id']}/{name}"}]
                }
                if expand:
                    sub |= {
                        "items": [{"links": [], **_visible(row)} for row in value["items"]],
                        "totalResults": value.get("totalResults", len(value["items"])),
                    }
                shown[name] = sub
            elif isinstance(value, dict) and "id" in value:
                shown[name] = {"links": [], **value}
            else:
                shown[name] = value
        return shown

    # -- API ----------------------------------------------------------------------------------
    async def _collection(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in RECORD_TYPES:
            return self._refuse(
                NsError(404, "NONEXISTENT_ID", f"Record type '{kind}' does not exist.")
            )
        if request.method == "GET":
            return self._list(request, kind)
        try:
            body = await _body(request)
            with self.lock:
                record_id, event = self._create(kind, body)
        except NsError as refused:
            return self._refuse(refused)
        self._push(kind, event)
        return self._saved(kind, record_id)

    async def _one(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        key = request.path_params["key"]
        if kind not in RECORD_TYPES:
            return self._refuse(
                NsError(404, "NONEXISTENT_ID", f"Record type '{kind}' does not exist.")
            )
        try:
            if request.method == "GET":
                found = self._find(kind, key)
                if found is None:
                    raise _missing(kind, key)
                expand = request.query_params.get("expandSubResources", "").lower() == "true"
                return _answer(self.render(kind, found, expand))
            body = await _body(request)
            with self.lock:
                if request.method == "PUT":
                    record_id, event = self._upsert(kind, key, body)
                else:
                    record_id, event = self._update(kind, key, body)
        except NsError as refused:
            return self._refuse(refused)
        self._push(kind, event)
        return self._saved(kind, record_id)

    def _list(self, request: Request, kind: str) -> Response:
        query = request.query_params.get("q")
        field = value = None
        if query:
            matched = _QUERY.match(query)
            if matched is None:
                return self._refuse(
                    NsError(
                        400,
                        "INVALID_PARAMETER",
                        f"Invalid query: {query!r}; use '<field> IS <value>'.",
                        "q",
                    )
                )
            field, value = matched.groups()
        try:
            limit = int(request.query_params.get("limit", "1000"))
            offset = int(request.query_params.get("offset", "0"))
        except ValueError:
            return self._refuse(NsError(400, "INVALID_PARAMETER", "limit and offset are integers"))
        if not (1 <= limit <= 1000 and offset >= 0):
            return self._refuse(
                NsError(400, "INVALID_PARAMETER", "limit is 1 to 1000, offset 0 or more")
            )
        with self.lock:
            rows = [
                r
                for r in self.records.get(kind, {}).values()
                if field is None or _text(r.get(field)) == value
            ]
        page = rows[offset : offset + limit]
        base = f"https://{self.account}.suitetalk.api.netsuite.com{PREFIX}/{kind}"
        return _answer(
            {
                "links": [{"rel": "self", "href": base}],
                "count": len(page),
                "hasMore": offset + limit < len(rows),
                "items": [
                    {"links": [{"rel": "self", "href": f"{base}/{r['id']}"}], "id": r["id"]}
                    for r in page
                ],
                "offset": offset,
                "totalResults": len(rows),
            }
        )

    # -- saving (under the lock) --------------------------------------------------------------
    def _create(self, kind: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        external = body.get("externalId")
        if isinstance(external, str) and self.by_external_id(kind, external) is not None:
            raise NsError(
                400,
                "USER_ERROR",
                f"A {kind} record with externalId {external} already exists.",
                "externalId",
            )
        record_id = str(self.books.next_number(f"id:{kind}") + _ID_BASE.get(kind, 0))
        record = {k: v for k, v in body.items() if k not in ("id", "links")}
        self.books.save(kind, record, record_id, created=True)
        self.records.setdefault(kind, {})[record_id] = record
        self._after_save(kind, record)
        return record_id, self._event(kind, "create", record)

    def _update(self, kind: str, key: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        current = self._find(kind, key)
        if current is None:
            raise _missing(kind, key)
        if "externalId" in body and body["externalId"] != current.get("externalId"):
            other = self.by_external_id(kind, str(body["externalId"]))
            if other is not None and other["id"] != current["id"]:
                raise NsError(
                    400,
                    "USER_ERROR",
                    f"A {kind} record with externalId {body['externalId']} already exists.",
                    "externalId",
                )
        merged = copy.deepcopy(current)
        merged.update({k: v for k, v in body.items() if k not in ("id", "links")})
        self._recompute_inputs(kind, merged, body)
        self.books.save(kind, merged, current["id"], created=False)
        self.records[kind][current["id"]] = merged
        self._after_save(kind, merged)
        return current["id"], self._event(kind, "edit", merged)

    def _upsert(self, kind: str, key: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        matched = _EID.match(key)
        if matched is None:
            raise NsError(
                400, "USER_ERROR", "PUT (upsert) needs an external id: /<type>/eid:<externalId>."
            )
        external = matched.group(1)
        if body.get("externalId", external) != external:
            raise invalid("the body's externalId differs from the eid: in the path", "externalId")
        if self.by_external_id(kind, external) is None:
            return self._create(kind, {**body, "externalId": external})
        return self._update(kind, key, body)

    @staticmethod
    def _recompute_inputs(kind: str, merged: dict[str, Any], body: Mapping[str, Any]) -> None:
        """Drop what the books computed so an update computes it again from the new input
        (totals and line taxes follow the lines; a line keeps a ``tax1Amt`` it was given)."""
        for computed in (
            "subtotal",
            "taxTotal",
            "total",
            "discountTotal",
            "amountRemaining",
            "status",
            "applied",
            "unapplied",
        ):
            merged.pop(computed, None)
        if kind == "invoice" and "dueDate" not in body and ("terms" in body or "tranDate" in body):
            merged.pop("dueDate", None)
        if "item" in body or kind not in ("salesOrder", "invoice", "creditMemo"):
            return
        for line in merged.get("item", {}).get("items", []):
            if not line.pop("_taxGiven", False):
                line.pop("tax1Amt", None)
            line.pop("taxRate1", None)

    def _after_save(self, kind: str, record: dict[str, Any]) -> None:
        """A payment changes what its invoices have paid."""
        if kind != "customerPayment":
            return
        for row in record.get("apply", {}).get("items", []):
            invoice = self.records.get("invoice", {}).get(row["doc"]["id"])
            if invoice is None:
                continue
            paid = Decimal(0)
            for payment in self.records.get("customerPayment", {}).values():
                for other in payment.get("apply", {}).get("items", []):
                    if other["apply"] and other["doc"]["id"] == invoice["id"]:
                        paid += other["amount"]
            iso = CURRENCIES[invoice["currency"]["id"]]
            invoice["amountPaid"] = rounded(paid, iso)
            invoice["amountRemaining"] = invoice["total"] - invoice["amountPaid"]
            state = "Paid In Full" if invoice["amountRemaining"] <= 0 else "Open"
            invoice["status"] = {"id": state, "refName": state}

    # -- helpers ------------------------------------------------------------------------------
    def _find(self, kind: str, ref: Any) -> dict[str, Any] | None:
        """A stored record by internal id, ``eid:<x>``, or a reference ``{id}`` or
        ``{externalId}`` (a copy: the caller changes it and stores it back)."""
        rows = self.records.get(kind, {})
        if isinstance(ref, dict):
            if isinstance(ref.get("id"), str | int) and not isinstance(ref.get("id"), bool):
                by_id = rows.get(str(ref["id"]))
                return None if by_id is None else copy.deepcopy(by_id)
            if isinstance(ref.get("externalId"), str):
                return self.by_external_id(kind, ref["externalId"])
            return None
        if not isinstance(ref, str):
            return None
        matched = _EID.match(ref)
        if matched is not None:
            return self.by_external_id(kind, matched.group(1))
        found = rows.get(ref)
        return None if found is None else copy.deepcopy(found)

    def _event(self, kind: str, action: str, record: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "eventId": str(uuid.uuid4()),
            "recordType": kind,
            "action": action,
            "occurredAt": now_iso(),
            "record": self.render(kind, record, expand=True),
        }

    def _push(self, kind: str, event: dict[str, Any]) -> None:
        """What the user-event script does after the save: post the record to Concord."""
        self.webhooks.emit(event["eventId"], f"{kind}.{event['action']}", ns_json(event))

    def _saved(self, kind: str, record_id: str) -> Response:
        location = f"{self._base_url()}{PREFIX}/{kind}/{record_id}"
        return Response(status_code=204, headers={"Location": location})

    def _base_url(self) -> str:
        return f"https://{self.account}.suitetalk.api.netsuite.com"

    def _refuse(self, refused: NsError) -> Response:
        return self.error(refused.status, refused.code, refused.detail, path=refused.path)

    def _seed(self) -> None:
        items = self._seed_items or {"5001": "PLAT-1"}
        for internal, sku in items.items():
            self.records.setdefault("serviceSaleItem", {})[internal] = {
                "id": internal,
                "itemId": sku,
                "displayName": sku,
                "isInactive": False,
            }

    # -- admin --------------------------------------------------------------------------------
    async def _admin_tax(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                data = _admin(await request.body())
                codes = data.get("codes")
                fail = data.get("fail", self.tax.fail)
                message = data.get("message", self.tax.message)
                if not isinstance(fail, bool) or not isinstance(message, str) or len(message) > 500:
                    raise ValueError("fail is a boolean, message a text of up to 500 characters")
                parsed: dict[str, Decimal] | None = None
                if codes is not None:
                    if not isinstance(codes, dict):
                        raise ValueError("codes is an object of code → percent")
                    parsed = {}
                    for code, rate in codes.items():
                        percent = money(rate, f"codes.{code}")
                        if not 0 <= percent <= 100:
                            raise ValueError(f"the rate of {code} must be 0 to 100 percent")
                        parsed[str(code)] = percent
            except (ValueError, NsError) as bad:
                return _answer({"error": "invalid_tax", "message": str(bad)}, 422)
            with self.lock:
                self.tax.fail, self.tax.message = fail, message
                if parsed is not None:
                    self.tax.codes.update(parsed)
        return _answer(
            {"fail": self.tax.fail, "message": self.tax.message, "codes": self.tax.codes}
        )

    async def _admin_concurrency(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                limit = _admin(await request.body()).get("limit")
                if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
                    raise ValueError("limit is an integer from 1 to 1000")
            except ValueError as bad:
                return _answer({"error": "invalid_concurrency", "message": str(bad)}, 422)
            self.concurrency = limit
        return _answer(
            {
                "limit": self.concurrency,
                "in_flight": self.in_flight,
                "refused": self.refused_for_concurrency,
            }
        )

    async def _admin_records(self, request: Request) -> Response:
        """Records with exact money (the base's JSON has no Decimal)."""
        return _answer({"records": self.all(request.path_params["kind"])})


#: Where each record type's internal ids start (NetSuite's differ by type; distinct ranges
#: make a test's mix-up of a customer id and an order id visible).
_ID_BASE = {
    "customer": 0,
    "salesOrder": 17000,
    "invoice": 27000,
    "customerPayment": 37000,
    "creditMemo": 47000,
}


def _visible(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _missing(kind: str, key: str) -> NsError:
    return NsError(
        404,
        "NONEXISTENT_ID",
        f"The record instance does not exist. Provide a valid record instance ID ({kind} {key}).",
    )


def _text(value: Any) -> str | None:
    if isinstance(value, dict):
        return None if value.get("id") is None else str(value["id"])
    return None if value is None else str(value)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise NsError(413, "USER_ERROR", "The request body is too large.")
    try:
        body = json.loads(raw or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise invalid("Invalid JSON: the request body could not be parsed.") from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    return body


def _admin(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as bad:
        raise ValueError(f"body is not JSON: {bad}") from None
    if not isinstance(data, dict):
        raise ValueError("the body is a JSON object")
    return data


class _ConcurrencyLimit:
    """NetSuite's account-wide limit of requests in flight: one more is refused with 429
    ``CONCURRENCY_LIMIT_EXCEEDED`` (no ``Retry-After``: NetSuite sends none)."""

    def __init__(self, app: Callable[..., Awaitable[None]], sandbox: ErpSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        sandbox = self.sandbox
        if sandbox.in_flight >= sandbox.concurrency:
            sandbox.refused_for_concurrency += 1
            sandbox.log(Request(scope, receive), 429, "concurrency")
            refusal = sandbox.error(429, "CONCURRENCY_LIMIT_EXCEEDED", CONCURRENCY_MESSAGE)
            await refusal(scope, receive, send)
            return
        sandbox.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            sandbox.in_flight -= 1


def build(
    webhook_url: str | None = None,
    secret: str | None = None,
    *,
    concurrency: int = 5,
    items: Mapping[str, str] | None = None,
) -> ErpSandbox:
    """The sandbox ``concord sandbox erp`` serves: pushes to ``webhook_url`` (Concord's
    ``/v1/webhooks/netsuite``) signed with ``secret``."""
    sandbox = ErpSandbox(secret=secret, concurrency=concurrency, items=items)
    sandbox.webhooks.configure(webhook_url)
    return sandbox

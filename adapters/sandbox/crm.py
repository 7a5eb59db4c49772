"""The CRM sandbox: a stateful stand-in for Salesforce's REST sObject API that publishes
Change Data Capture back to Concord.

Why stateful and not canned answers: the quote-to-cash tests count what the CRM holds (one
opportunity, its milestones written once) and the deal flow starts here — a deal won in the
sandbox must reach Concord as the CDC messages a real org sends (shapes:
adapters/salesforce/cdc.py), so Concord's inbound side places exactly one order from them.

API (``/services/data/v60.0``, any ``vNN.0`` works; ``Authorization: Bearer <token>``):

==========================================  ================================================
``POST   /sobjects/<Type>``                  create → 201 ``{"id", "success", "errors"}``
``GET    /sobjects/<Type>/<Id>``             the record with ``attributes``
``PATCH  /sobjects/<Type>/<Id>``             update → 204
``DELETE /sobjects/<Type>/<Id>``             delete → 204
``PATCH  /sobjects/<Type>/<ExtField>/<v>``   upsert: 201 created, 204 updated, 300 several
``GET    /limits``                           ``DailyApiRequests {Max, Remaining}``
==========================================  ================================================

Types: Account (``ParentId`` hierarchy), Opportunity (``IsWon``/``IsClosed``/``Probability``
derived from ``StageName``; ``Amount`` kept at the sum of the lines' ``TotalPrice`` once it
has lines; Concord's milestone fields ``Concord_*__c``), OpportunityLineItem (from a
PricebookEntry of the opportunity's currency; ``TotalPrice = Quantity * UnitPrice``),
Product2, PricebookEntry, Pricebook2 (one standard price book exists).

Errors are Salesforce's JSON array ``[{"message", "errorCode", "fields"}]``, injected faults
included. Every answer carries ``Sforce-Limit-Info: api-usage=N/MAX``; past the daily
allocation every call answers 403 ``REQUEST_LIMIT_EXCEEDED`` (``POST /_admin/limits``
``{"max": N, "used": M}`` sets it).

CDC: every committed change is one message per record (``transactionKey`` per request,
``sequenceNumber`` within it) sent to the configured webhook URL signed
``X-Concord-Signature: <hex HMAC-SHA256 of the body>``. A request with
``Sforce-Call-Options: client=<name>`` is published with ``changeOrigin``
``com/salesforce/api/rest/60.0;client=<name>`` (Concord ignores its own echoes by it);
changes made through the Python helpers (:meth:`CrmSandbox.create_account` …) are a user's
in the UI. A write that changes nothing publishes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from adapters.connectors.exact_json import dumps_exact as dumps
from adapters.salesforce.ids import checksum, to_18
from adapters.sandbox import crm_cdc
from adapters.sandbox.base import Sandbox, json_response
from adapters.sandbox.crm_schema import (
    OBJECTS,
    STAGES,
    SalesforceError,
    SObject,
    check_fields,
    sf_datetime,
)

__all__ = ["SIGNATURE_HEADER", "UI_ORIGIN", "CrmSandbox", "SalesforceError", "build"]

SIGNATURE_HEADER = "X-Concord-Signature"
#: ``changeOrigin`` of a change a user made in the UI (Salesforce's own client).
UI_ORIGIN = "com/salesforce/api/soap/60.0;client=SfdcInternalAPI/"
_VERSION = re.compile(r"^v\d{2}\.0$")
_CLIENT = re.compile(r"(?:^|[;,\s])client=([^;,\s]+)")
_MAX_BODY = 1024 * 1024
_DAY_S = 86_400.0
_USER = to_18("005Sb0000000USR")
_MONEY = Decimal("0.01")
_DECODER = json.JSONDecoder(parse_float=Decimal)


class CrmSandbox(Sandbox):
    """Salesforce, as far as quote-to-cash needs it. ``secret`` signs the CDC webhooks;
    ``token`` (optional) is the one bearer token accepted (any non-empty one otherwise)."""

    name = "crm"

    def __init__(
        self,
        secret: str | None = None,
        *,
        daily_limit: int = 15_000,
        token: str | None = None,
        currency: str = "USD",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.secret = secret
        self.token = token
        self.daily_limit = daily_limit
        self.currency = currency
        self.port = 0
        self.cdc: list[dict[str, Any]] = []
        """Every CDC message published, in order (tests deliver or inspect them)."""
        self._clock = clock
        self._usage_lock = threading.Lock()
        self.api_used = 0
        self._day_started = clock()
        self._counters: dict[str, itertools.count[int]] = {}
        self._tx = itertools.count(1)
        self._replay = itertools.count(1)
        self._last_ms = 0
        if secret is not None:
            self.webhooks.configure(None, signer=self._sign)
        self.standard_pricebook_id = self._seed()

    # --- what a Sandbox defines -----------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        base = "/services/data/{version}"
        return [
            Route("/_admin/limits", self._admin_limits, methods=["GET", "POST"]),
            Route(f"{base}/limits", self._limits, methods=["GET"]),
            Route(f"{base}/sobjects/{{type}}", self._collection, methods=["POST"]),
            Route(
                f"{base}/sobjects/{{type}}/{{id}}",
                self._record,
                methods=["GET", "PATCH", "DELETE"],
            ),
            Route(
                f"{base}/sobjects/{{type}}/{{field}}/{{value}}",
                self._by_external_id,
                methods=["GET", "PATCH"],
            ),
        ]

    def error(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> Response:
        headers = {"Sforce-Limit-Info": self.limit_info()}
        if retry_after is not None:
            headers["Retry-After"] = _seconds(retry_after)
        body = [{"message": message, "errorCode": code, "fields": []}]
        return json_response(body, status, headers)

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.cdc.clear()
            self._counters.clear()
            with self._usage_lock:
                self.api_used = 0
            self.standard_pricebook_id = self._seed()

    def limit_info(self) -> str:
        return f"api-usage={self.api_used}/{self.daily_limit}"

    # --- Python helpers (a user in the UI; the same code paths as the API) ----------------
    def create_account(
        self,
        name: str,
        *,
        parent_id: str | None = None,
        website: str | None = None,
        currency: str | None = None,
        **fields: Any,
    ) -> str:
        body = {"Name": name, "Type": "Customer", **fields}
        if parent_id is not None:
            body["ParentId"] = parent_id
        if website is not None:
            body["Website"] = website
        body["CurrencyIsoCode"] = currency or self.currency
        return self.insert("Account", body)

    def create_product(
        self,
        name: str,
        code: str,
        *,
        prices: Mapping[str, Decimal | str | int],
        charge_type: str | None = None,
        **fields: Any,
    ) -> str:
        """A Product2 with a standard PricebookEntry per currency of ``prices``."""
        body: dict[str, Any] = {"Name": name, "ProductCode": code, "IsActive": True, **fields}
        if charge_type is not None:
            body["SBQQ__ChargeType__c"] = charge_type
        product_id = self.insert("Product2", body)
        for currency, price in prices.items():
            self.insert(
                "PricebookEntry",
                {
                    "Pricebook2Id": self.standard_pricebook_id,
                    "Product2Id": product_id,
                    "UnitPrice": Decimal(str(price)),
                    "CurrencyIsoCode": currency,
                    "IsActive": True,
                },
            )
        return product_id

    def create_opportunity(
        self,
        account_id: str,
        name: str,
        *,
        close_date: str,
        currency: str | None = None,
        stage: str = "Negotiation/Review",
        term_months: int | None = None,
        amount: Decimal | str | None = None,
        **fields: Any,
    ) -> str:
        account = self.get("Account", account_id)
        body: dict[str, Any] = {
            "AccountId": account_id,
            "Name": name,
            "StageName": stage,
            "CloseDate": close_date,
            "CurrencyIsoCode": currency or account.get("CurrencyIsoCode") or self.currency,
            **fields,
        }
        if term_months is not None:
            body["Term_Months__c"] = term_months
        if amount is not None:
            body["Amount"] = Decimal(str(amount))
        return self.insert("Opportunity", body)

    def add_line(
        self,
        opportunity_id: str,
        product_id: str,
        *,
        quantity: Decimal | str | int,
        unit_price: Decimal | str | None = None,
        service_date: str | None = None,
        **fields: Any,
    ) -> str:
        """A line from the product's standard price in the opportunity's currency
        (``unit_price`` overrides the sales price)."""
        opportunity = self.get("Opportunity", opportunity_id)
        entry = self._entry_for(to_18(product_id), str(opportunity["CurrencyIsoCode"]))
        body: dict[str, Any] = {
            "OpportunityId": opportunity_id,
            "PricebookEntryId": entry,
            "Quantity": Decimal(str(quantity)),
            **fields,
        }
        if unit_price is not None:
            body["UnitPrice"] = Decimal(str(unit_price))
        if service_date is not None:
            body["ServiceDate"] = service_date
        return self.insert("OpportunityLineItem", body)

    def win(self, opportunity_id: str) -> None:
        self.update("Opportunity", opportunity_id, {"StageName": "Closed Won"})

    def lose(self, opportunity_id: str) -> None:
        self.update("Opportunity", opportunity_id, {"StageName": "Closed Lost"})

    def get(self, sobject: str, record_id: str) -> dict[str, Any]:
        """A copy of one record with every field of its type (null when unset, as the REST
        API shows it); ``SalesforceError`` NOT_FOUND when absent."""
        kind = _object(sobject)
        with self.lock:
            record = self._find(sobject, record_id)
            return {name: record.get(name) for name in kind.fields}

    # --- the operations (the API and the helpers both call these) ------------------------
    def insert(self, sobject: str, body: Any, origin: str = UI_ORIGIN) -> str:
        kind = _object(sobject)
        with self.lock, self._transaction(origin) as tx:
            fields = check_fields(kind, body, creating=True, exists=self._exists)
            return self._create(kind.name, fields, tx)

    def update(self, sobject: str, record_id: str, body: Any, origin: str = UI_ORIGIN) -> None:
        kind = _object(sobject)
        with self.lock, self._transaction(origin) as tx:
            record = self._find(kind.name, record_id)
            fields = check_fields(kind, body, creating=False, exists=self._exists)
            self._modify(kind.name, str(record["Id"]), fields, tx)

    def upsert(
        self, sobject: str, field: str, value: str, body: Any, origin: str = UI_ORIGIN
    ) -> tuple[bool, str]:
        """``(created, id)``; ``SalesforceError`` 300 when several records match."""
        kind = _object(sobject)
        if field not in kind.external_ids:
            raise SalesforceError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field}",
            )
        with self.lock, self._transaction(origin) as tx:
            rows = self.records.get(kind.name, {})
            found = [rid for rid, r in rows.items() if r.get(field) == value]
            if len(found) > 1:
                raise _Multiple(kind.name, found)
            data = dict(body) if isinstance(body, dict) else body
            if isinstance(data, dict):
                if data.get(field, value) != value:
                    raise SalesforceError(
                        400,
                        "INVALID_FIELD",
                        f"The value of {field} in the body does not match the URL",
                        [field],
                    )
                data[field] = value
            fields = check_fields(kind, data, creating=not found, exists=self._exists)
            if found:
                self._modify(kind.name, found[0], fields, tx)
                return False, found[0]
            return True, self._create(kind.name, fields, tx)

    def delete(self, sobject: str, record_id: str, origin: str = UI_ORIGIN) -> None:
        kind = _object(sobject)
        with self.lock, self._transaction(origin) as tx:
            record = self._find(kind.name, record_id)
            rid = str(record["Id"])
            del self.records[kind.name][rid]
            tx.append(crm_cdc.Change(kind.name, "DELETE", rid, {}))
            if kind.name == "OpportunityLineItem":
                self._reprice(str(record["OpportunityId"]), tx)

    # --- records, derived fields and transactions -----------------------------------------
    def _seed(self) -> str:
        with self.lock:
            pricebook = self._new_id("Pricebook2")
            now = self._now()
            self.records.setdefault("Pricebook2", {})[pricebook] = {
                "Id": pricebook,
                "Name": "Standard Price Book",
                "IsActive": True,
                "IsStandard": True,
                "CreatedDate": now,
                "LastModifiedDate": now,
                "SystemModstamp": now,
                "IsDeleted": False,
            }
        return pricebook

    def _new_id(self, sobject: str) -> str:
        counter = self._counters.setdefault(sobject, itertools.count(1))
        id15 = f"{OBJECTS[sobject].prefix}Sb{next(counter):010d}"
        return id15 + checksum(id15)

    def _exists(self, sobject: str, record_id: str) -> bool:
        return record_id in self.records.get(sobject, {})

    def _find(self, sobject: str, record_id: str) -> dict[str, Any]:
        kind = _object(sobject)
        try:
            rid = to_18(record_id)
        except ValueError:
            rid = ""
        if not rid.startswith(kind.prefix):
            raise SalesforceError(
                400, "MALFORMED_ID", f"{kind.label} ID: id value of incorrect type: {record_id}"
            )
        record = self.records.get(kind.name, {}).get(rid)
        if record is None:
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        return record

    def _now(self) -> str:
        return sf_datetime(datetime.fromtimestamp(self._clock(), UTC))

    def _create(self, sobject: str, fields: dict[str, Any], tx: list[crm_cdc.Change]) -> str:
        rid = self._new_id(sobject)
        now = self._now()
        record: dict[str, Any] = {
            "Id": rid,
            **fields,
            "OwnerId": _USER,
            "CreatedDate": now,
            "LastModifiedDate": now,
            "SystemModstamp": now,
            "IsDeleted": False,
        }
        if sobject == "Opportunity":
            record.setdefault("CurrencyIsoCode", self.currency)
            record.update(_stage_fields(str(record["StageName"]), fields))
            record["HasOpportunityLineItem"] = False
        elif sobject == "OpportunityLineItem":
            record.update(self._line_defaults(record))
        elif sobject == "PricebookEntry":
            record.setdefault("CurrencyIsoCode", self.currency)
            record.setdefault("IsActive", True)
        elif sobject == "Account" and fields.get("ParentId") == rid:
            raise SalesforceError(400, "CIRCULAR_DEPENDENCY", "An account cannot be its parent")
        self.records.setdefault(sobject, {})[rid] = record
        tx.append(crm_cdc.Change(sobject, "CREATE", rid, record))
        if sobject == "OpportunityLineItem":
            self._reprice(str(record["OpportunityId"]), tx)
        return rid

    def _modify(
        self, sobject: str, rid: str, fields: dict[str, Any], tx: list[crm_cdc.Change]
    ) -> None:
        record = self.records[sobject][rid]
        new = dict(fields)
        if sobject == "Opportunity":
            if "Amount" in new and record.get("HasOpportunityLineItem"):
                raise SalesforceError(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Amount is the sum of the opportunity's products and cannot be set",
                    ["Amount"],
                )
            if "StageName" in new:
                new.update(_stage_fields(str(new["StageName"]), fields))
        elif sobject == "OpportunityLineItem":
            merged = {**record, **new}
            if "TotalPrice" in new and "UnitPrice" not in new:
                merged["UnitPrice"] = None
            new.update(self._prices(merged, "TotalPrice" in new and "UnitPrice" not in new))
        elif sobject == "Account" and new.get("ParentId") == rid:
            raise SalesforceError(400, "CIRCULAR_DEPENDENCY", "An account cannot be its parent")
        self._apply(sobject, rid, new, tx)
        if sobject == "OpportunityLineItem":
            self._reprice(str(record["OpportunityId"]), tx)

    def _apply(self, sobject: str, rid: str, new: dict[str, Any], tx: list[crm_cdc.Change]) -> None:
        """Write what differs; one change per record and transaction (merged)."""
        record = self.records[sobject][rid]
        changed = [name for name, value in new.items() if record.get(name) != value]
        if not changed:
            return
        now = self._now()
        record.update({name: new[name] for name in changed})
        record["LastModifiedDate"] = record["SystemModstamp"] = now
        for change in tx:
            if change.record_id != rid:
                continue
            if change.change_type == "UPDATE":  # a CREATE holds the live record already
                change.values.update({n: record.get(n) for n in changed})
                change.values["LastModifiedDate"] = now
                change.changed.extend(n for n in changed if n not in change.changed)
            return
        values = {name: record.get(name) for name in changed}
        values["LastModifiedDate"] = now
        tx.append(crm_cdc.Change(sobject, "UPDATE", rid, values, changed))

    def _line_defaults(self, line: dict[str, Any]) -> dict[str, Any]:
        entry = self.records["PricebookEntry"][str(line["PricebookEntryId"])]
        opportunity = self.records["Opportunity"][str(line["OpportunityId"])]
        if entry.get("CurrencyIsoCode") != opportunity.get("CurrencyIsoCode"):
            raise SalesforceError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                "field integrity exception: PricebookEntryId (pricebook entry currency code "
                "does not match opportunity currency code)",
                ["PricebookEntryId"],
            )
        book = opportunity.get("Pricebook2Id")
        if book is not None and book != entry.get("Pricebook2Id"):
            raise SalesforceError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                "field integrity exception: PricebookEntryId (pricebook entry is in a "
                "different pricebook than the one assigned to the opportunity)",
                ["PricebookEntryId"],
            )
        product = self.records["Product2"][str(entry["Product2Id"])]
        given_total = line.get("TotalPrice") is not None
        if given_total and line.get("UnitPrice") is not None:
            raise SalesforceError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                "field integrity exception: TotalPrice (cannot set both UnitPrice and TotalPrice)",
                ["TotalPrice"],
            )
        siblings = [
            r
            for r in self.records.get("OpportunityLineItem", {}).values()
            if r.get("OpportunityId") == line["OpportunityId"]
        ]
        merged = {
            **line,
            "Product2Id": entry["Product2Id"],
            "ProductCode": product.get("ProductCode"),
            "Name": f"{opportunity.get('Name')} {product.get('Name')}",
            "ListPrice": entry["UnitPrice"],
            "CurrencyIsoCode": entry["CurrencyIsoCode"],
        }
        merged.setdefault("SortOrder", len(siblings) + 1)
        if not given_total and merged.get("UnitPrice") is None:
            merged["UnitPrice"] = entry["UnitPrice"]
        merged.update(self._prices(merged, given_total))
        return merged

    @staticmethod
    def _prices(line: dict[str, Any], from_total: bool) -> dict[str, Any]:
        quantity = Decimal(line["Quantity"])
        if quantity <= 0:
            raise SalesforceError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                "field integrity exception: Quantity (quantity must be positive)",
                ["Quantity"],
            )
        if from_total:
            total = Decimal(line["TotalPrice"])
            unit = (total / quantity).quantize(_MONEY)
        else:
            unit = Decimal(line["UnitPrice"])
            total = (unit * quantity).quantize(_MONEY)
        return {"UnitPrice": unit, "TotalPrice": total}

    def _reprice(self, opportunity_id: str, tx: list[crm_cdc.Change]) -> None:
        """``Amount`` = the lines' ``TotalPrice`` sum, as Salesforce keeps it."""
        lines = [
            r
            for r in self.records.get("OpportunityLineItem", {}).values()
            if r.get("OpportunityId") == opportunity_id
        ]
        opportunity = self.records["Opportunity"].get(opportunity_id)
        if opportunity is None:
            return
        new: dict[str, Any] = {"HasOpportunityLineItem": bool(lines)}
        if lines:
            new["Amount"] = sum((Decimal(r["TotalPrice"]) for r in lines), Decimal("0.00"))
            entry = self.records["PricebookEntry"][str(lines[0]["PricebookEntryId"])]
            new["Pricebook2Id"] = entry["Pricebook2Id"]
        self._apply("Opportunity", opportunity_id, new, tx)

    def _entry_for(self, product_id: str, currency: str) -> str:
        with self.lock:
            for rid, entry in self.records.get("PricebookEntry", {}).items():
                if (
                    entry.get("Product2Id") == product_id
                    and entry.get("CurrencyIsoCode") == currency
                    and entry.get("Pricebook2Id") == self.standard_pricebook_id
                ):
                    return rid
        raise SalesforceError(
            400,
            "FIELD_INTEGRITY_EXCEPTION",
            f"product {product_id} has no {currency} price in the standard price book",
            ["PricebookEntryId"],
        )

    @contextlib.contextmanager
    def _transaction(self, origin: str) -> Iterator[list[crm_cdc.Change]]:
        """Collect one request's changes and publish them as CDC once it succeeded. Every
        check runs before the first record is touched, so a refused request changes
        nothing and publishes nothing (the caller holds :attr:`lock` throughout)."""
        tx: list[crm_cdc.Change] = []
        yield tx
        if tx:
            self._publish(tx, origin)

    def _publish(self, tx: list[crm_cdc.Change], origin: str) -> None:
        now_ms = max(int(self._clock() * 1000), self._last_ms + 1)
        self._last_ms = now_ms
        key = f"{next(self._tx):08x}-sb{now_ms:013d}"
        for sequence, change in enumerate(tx, start=1):
            body = crm_cdc.message(
                change,
                transaction_key=key,
                sequence=sequence,
                commit_ms=now_ms,
                origin=origin,
                replay_id=next(self._replay),
                commit_user=_USER,
            )
            self.cdc.append(body)
            self.webhooks.emit(
                f"{key}:{sequence}", f"{change.entity}.{change.change_type}", dumps(body)
            )

    def _sign(self, raw: bytes) -> dict[str, str]:
        assert self.secret is not None
        digest = hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        return {SIGNATURE_HEADER: digest}

    # --- HTTP ----------------------------------------------------------------------------
    async def _collection(self, request: Request) -> Response:
        def create(origin: str, body: Any) -> Response:
            rid = self.insert(request.path_params["type"], body, origin)
            return self._answer({"id": rid, "success": True, "errors": []}, 201)

        return await self._serve(request, create, needs_body=True)

    async def _record(self, request: Request) -> Response:
        sobject, rid = request.path_params["type"], request.path_params["id"]

        def act(origin: str, body: Any) -> Response:
            if request.method == "GET":
                return self._answer(self._shown(sobject, self.get(sobject, rid)), 200)
            if request.method == "DELETE":
                self.delete(sobject, rid, origin)
            else:
                self.update(sobject, rid, body, origin)
            return self._answer(None, 204)

        return await self._serve(request, act, needs_body=request.method == "PATCH")

    async def _by_external_id(self, request: Request) -> Response:
        sobject = request.path_params["type"]
        field, value = request.path_params["field"], request.path_params["value"]

        def act(origin: str, body: Any) -> Response:
            if request.method == "GET":
                kind = _object(sobject)
                with self.lock:
                    rows = [
                        r for r in self.records.get(kind.name, {}).values() if r.get(field) == value
                    ]
                if field not in kind.external_ids or not rows:
                    raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
                if len(rows) > 1:
                    raise _Multiple(kind.name, [str(r["Id"]) for r in rows])
                return self._answer(self._shown(kind.name, dict(rows[0])), 200)
            created, rid = self.upsert(sobject, field, value, body, origin)
            if created:
                return self._answer(
                    {"id": rid, "success": True, "errors": [], "created": True}, 201
                )
            return self._answer(None, 204)

        return await self._serve(request, act, needs_body=request.method == "PATCH")

    async def _limits(self, request: Request) -> Response:
        def read(origin: str, body: Any) -> Response:
            remaining = max(0, self.daily_limit - self.api_used)
            return self._answer(
                {"DailyApiRequests": {"Max": self.daily_limit, "Remaining": remaining}}, 200
            )

        return await self._serve(request, read, needs_body=False)

    async def _serve(
        self, request: Request, act: Callable[[str, Any], Response], *, needs_body: bool
    ) -> Response:
        """Authenticate, count against the daily allocation, parse, act, answer."""
        version = request.path_params["version"]
        if not _VERSION.match(version):
            return self._refuse(
                SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            )
        auth = request.headers.get("authorization", "")
        bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not bearer or (self.token is not None and bearer != self.token):
            return self._refuse(
                SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            )
        with self._usage_lock:
            if self._clock() - self._day_started >= _DAY_S:
                self.api_used, self._day_started = 0, self._clock()  # a new allocation day
            if self.api_used >= self.daily_limit:
                return self._refuse(
                    SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                )
            self.api_used += 1
        body: Any = None
        if needs_body:
            raw = await request.body()
            if len(raw) > _MAX_BODY:
                return self._refuse(
                    SalesforceError(413, "REQUEST_ENTITY_TOO_LARGE", "body too large")
                )
            try:
                body = loads(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):
                return self._refuse(
                    SalesforceError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON")
                )
        origin = f"com/salesforce/api/rest/{version.removeprefix('v')}"
        options = _CLIENT.search(request.headers.get("sforce-call-options", ""))
        if options is not None:
            origin = f"{origin};client={options.group(1)}"
        try:
            return act(origin, body)
        except _Multiple as several:
            return self._answer(several.urls(version), 300)
        except SalesforceError as refused:
            return self._refuse(refused)

    def _answer(self, body: Any, status: int) -> Response:
        headers = {"Sforce-Limit-Info": self.limit_info()}
        if body is None:
            return Response(status_code=status, headers=headers)
        return Response(
            dumps(body), status_code=status, headers=headers, media_type="application/json"
        )

    def _refuse(self, error: SalesforceError) -> Response:
        return self._answer(error.body(), error.status)

    def _shown(self, sobject: str, record: dict[str, Any]) -> dict[str, Any]:
        url = f"/services/data/v60.0/sobjects/{sobject}/{record['Id']}"
        return {"attributes": {"type": sobject, "url": url}, **record}

    async def _admin_limits(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                data = loads(await request.body() or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("a JSON object")
                limit = data.get("max", self.daily_limit)
                used = data.get("used", self.api_used)
                if not all(isinstance(v, int) and v >= 0 for v in (limit, used)):
                    raise ValueError("max and used are non-negative integers")
            except ValueError as bad:
                return json_response({"error": "invalid_limits", "message": str(bad)}, 422)
            with self._usage_lock:
                self.daily_limit, self.api_used = limit, used
        return json_response({"max": self.daily_limit, "used": self.api_used})


def loads(raw: bytes) -> Any:
    """A request body, fractional numbers as Decimal (``ValueError`` when not JSON)."""
    return _DECODER.decode(raw.decode("utf-8"))


class _Multiple(Exception):
    """An external id that matches several records (300 Multiple Choices)."""

    def __init__(self, sobject: str, ids: list[str]) -> None:
        super().__init__(f"{len(ids)} {sobject} records match")
        self.sobject = sobject
        self.ids = ids

    def urls(self, version: str) -> list[str]:
        return [f"/services/data/{version}/sobjects/{self.sobject}/{rid}" for rid in self.ids]


def _object(sobject: str) -> SObject:
    kind = OBJECTS.get(sobject)
    if kind is None:
        raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
    return kind


def _stage_fields(stage: str, given: Mapping[str, Any]) -> dict[str, Any]:
    closed, won, probability = STAGES[stage]
    derived: dict[str, Any] = {"IsClosed": closed, "IsWon": won}
    derived["Probability"] = given.get("Probability", Decimal(probability).quantize(_MONEY))
    return derived


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def build(
    port: int = 0,
    webhook_url: str | None = None,
    secret: str | None = None,
    *,
    daily_limit: int = 15_000,
) -> CrmSandbox:
    """The sandbox ``concord sandbox crm --port N --webhook-url URL --secret S`` serves
    (``serve_forever(sandbox, sandbox.port)``): CDC to ``webhook_url`` (Concord's
    ``/v1/webhooks/salesforce``) signed with ``secret``."""
    sandbox = CrmSandbox(secret, daily_limit=daily_limit)
    sandbox.port = port
    if webhook_url:
        sandbox.webhooks.configure(webhook_url)
    return sandbox

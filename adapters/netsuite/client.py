"""NetSuite's SuiteTalk REST record API, as a client: no Concord types, only records.

Why its own client (httpx, no SDK: none is maintained for REST): the connector speaks in
canonical events, this module in NetSuite calls, so the same client drives the ERP sandbox
and a real account — only the base URL and the token differ.

What it knows of NetSuite:

* A create answers ``204`` with no body: the new internal id is the last segment of
  ``Location``. An upsert ``PUT /<type>/eid:<externalId>`` answers the same way and is the
  way to write idempotently (NetSuite has no idempotency key for synchronous calls).
* Every call holds one slot of the target's :class:`~adapters.connectors.budget.Budget`:
  NetSuite's concurrency limit is account-wide, so all workers and processes share it.
* Errors: 429 (``CONCURRENCY_LIMIT_EXCEEDED``), 5xx, timeouts and connection failures are
  :class:`TransientDeliveryError` (``Retry-After`` honoured); other 4xx are
  :class:`PermanentDeliveryError` quoting ``o:errorDetails`` (code, path, detail), so the dead
  letter says what NetSuite refused. A ``404`` on a read is ``None``, not an error.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from adapters.connectors.budget import Budget
from adapters.connectors.exact_json import dumps_exact
from adapters.connectors.http import budgeted_request, parse_retry_after
from adapters.connectors.port import PermanentDeliveryError, TransientDeliveryError

__all__ = ["RECORD_PATH", "NetSuiteClient", "NetSuiteMissing"]

RECORD_PATH = "/services/rest/record/v1"
_TRANSIENT_4XX = frozenset({408, 409, 425, 429})
_MAX_DETAIL = 500


class NetSuiteMissing(PermanentDeliveryError):
    """``404 NONEXISTENT_ID``: the record named does not exist (an update of nothing)."""


class NetSuiteClient:
    """Calls one NetSuite account. ``base_url`` is the account's REST host
    (``https://<account>.suitetalk.api.netsuite.com``, or the sandbox's address), with or
    without the ``/services/rest/record/v1`` path; ``token`` an OAuth 2.0 bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        budget: Budget | None = None,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        root = base_url.rstrip("/")
        if root.endswith(RECORD_PATH):
            root = root[: -len(RECORD_PATH)]
        self.base = f"{root}{RECORD_PATH}"
        self.budget = budget or Budget.unlimited("erp")
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = client or httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, headers=headers
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- writes -------------------------------------------------------------------------------
    async def upsert(self, record_type: str, external_id: str, record: dict[str, Any]) -> str:
        """Create or update the record with this ``externalId``; its internal id."""
        response = await self._call("PUT", f"{record_type}/{eid(external_id)}", record)
        return _location_id(response, record_type)

    async def create(self, record_type: str, record: dict[str, Any]) -> str:
        """A new record (not idempotent: prefer :meth:`upsert`); its internal id."""
        return _location_id(await self._call("POST", record_type, record), record_type)

    async def update(
        self, record_type: str, key: str, changes: dict[str, Any], *, replace: str | None = None
    ) -> None:
        """``PATCH`` the record (``key``: internal id or :func:`eid`); ``replace`` names a
        sublist the changes replace whole (``item``), as ``?replace=`` does."""
        params = {"replace": replace} if replace else None
        await self._call("PATCH", f"{record_type}/{key}", changes, params=params)

    # -- reads --------------------------------------------------------------------------------
    async def get(
        self, record_type: str, key: str, *, expand: bool = True
    ) -> dict[str, Any] | None:
        """The record (sublists expanded), or None when there is none."""
        params = {"expandSubResources": "true"} if expand else None
        try:
            response = await self._call("GET", f"{record_type}/{key}", params=params)
        except NetSuiteMissing:
            return None
        return _json(response)

    async def find_ids(self, record_type: str, field: str, value: str) -> list[str]:
        """Internal ids of the records whose ``field`` is ``value`` (``?q=<field> IS <value>``)."""
        response = await self._call(
            "GET", record_type, params={"q": f'{field} IS "{value}"', "limit": "1000"}
        )
        return [str(row["id"]) for row in _json(response).get("items", [])]

    # -- the call -----------------------------------------------------------------------------
    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        url = f"{self.base}/{path}"
        what = f"NetSuite {method} {path}"
        content = None if body is None else dumps_exact(body)
        response = await budgeted_request(
            self._http, self.budget, what, "NetSuite", method, url, content=content, params=params
        )
        status = response.status_code
        if 200 <= status < 300:
            return response
        said = f"{what} answered {status}: {describe_error(response)}"
        if status >= 500 or status in _TRANSIENT_4XX:
            raise TransientDeliveryError(
                said, retry_after=parse_retry_after(response.headers.get("Retry-After"))
            )
        if status == 404:
            raise NetSuiteMissing(said)
        raise PermanentDeliveryError(said)


def eid(external_id: str) -> str:
    """The path key of a record by its external id (``eid:<externalId>``, escaped)."""
    return f"eid:{quote(external_id, safe='')}"


def describe_error(response: httpx.Response) -> str:
    """NetSuite's ``o:errorDetails`` as one line (``INVALID_KEY_OR_REF at item.items[0].item:
    Invalid item reference key 9999.``), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:_MAX_DETAIL] or "(no body)"
    details = body.get("o:errorDetails") if isinstance(body, dict) else None
    if not isinstance(details, list) or not details:
        return response.text[:_MAX_DETAIL]
    parts = []
    for detail in details[:5]:
        if not isinstance(detail, dict):
            continue
        code = detail.get("o:errorCode") or "ERROR"
        where = f" at {detail['o:errorPath']}" if detail.get("o:errorPath") else ""
        parts.append(f"{code}{where}: {detail.get('detail', '')}")
    return "; ".join(parts)[:_MAX_DETAIL] or response.text[:_MAX_DETAIL]


def _location_id(response: httpx.Response, record_type: str) -> str:
    location = response.headers.get("Location", "")
    found = str(location).rstrip("/").rsplit("/", 1)[-1]
    if not location or not found:
        raise PermanentDeliveryError(
            f"NetSuite saved a {record_type} but sent no Location with its internal id"
        )
    return found


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        document = json.loads(response.content, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as bad:
        raise TransientDeliveryError(
            f"NetSuite answered with a body that is not JSON: {bad}"
        ) from bad
    if not isinstance(document, dict):
        raise TransientDeliveryError("NetSuite answered with JSON that is not an object")
    return document

"""A Salesforce REST client (sObjects), the CRM connector's way out.

Why its own small client and not a Salesforce SDK: Concord needs four calls (read, update,
upsert by external id, and the usage header), and the well-kept Python SDKs are synchronous
(``simple-salesforce`` on ``requests``); httpx keeps the connector on the subscriber's event
loop. It works against a real org or the CRM sandbox alike (base URL and token from
settings).

Every call:

* carries ``Sforce-Call-Options: client=<echo client>``, so the CDC Salesforce publishes for
  Concord's own writes names Concord in ``changeOrigin`` and the inbound side ignores it;
* holds one slot of the target's shared :class:`~adapters.connectors.budget.Budget`;
* reads ``Sforce-Limit-Info: api-usage=N/MAX`` into :attr:`SalesforceClient.usage`.

Errors (Salesforce's JSON array ``[{"message", "errorCode", "fields"}]``) become the two
delivery errors: 408/409/429/5xx, ``UNABLE_TO_LOCK_ROW``, timeouts and connection errors are
transient; ``REQUEST_LIMIT_EXCEEDED`` (the daily allocation or the concurrent long-request
limit) is transient with a long wait; every other 4xx and a 300 (an external id matching
several records) is permanent, quoting what Salesforce said.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from adapters.connectors.budget import Budget
from adapters.connectors.http import budgeted_request, parse_retry_after
from adapters.connectors.port import PermanentDeliveryError, TransientDeliveryError

__all__ = ["LIMIT_RETRY_AFTER_S", "LOCK_RETRY_AFTER_S", "SalesforceClient"]

#: How long to wait when the org's API allocation is used up (it is a rolling 24 hours).
LIMIT_RETRY_AFTER_S = 900.0
#: A row lock is held by another transaction for moments: retry soon.
LOCK_RETRY_AFTER_S = 1.0
_TRANSIENT = frozenset({408, 409, 425, 429})
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
_MAX_DETAIL = 500
_SAFE = re.compile(r"^[A-Za-z0-9_]{1,80}$")


class SalesforceClient:
    """``await client.update("Opportunity", id, {...})`` and friends."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        echo_client: str = "concord",
        api_version: str = "60.0",
        budget: Budget | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base = f"{base_url.rstrip('/')}/services/data/v{api_version}"
        self.budget = budget or Budget.unlimited("crm")
        self.usage: tuple[int, int] | None = None
        """The last ``Sforce-Limit-Info`` seen: (used, max) of the daily allocation."""
        self._http = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            transport=transport,
            headers={
                "Authorization": f"Bearer {token}",
                "Sforce-Call-Options": f"client={echo_client}",
                "Accept": "application/json",
            },
        )

    async def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """The record, or None when Salesforce does not have it (404)."""
        response = await self._call("GET", self._path(sobject, record_id), ok_missing=True)
        if response is None:
            return None
        found: dict[str, Any] = response.json()
        return found

    async def update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        """``PATCH`` the fields (204). Sending the same values again changes nothing."""
        await self._call("PATCH", self._path(sobject, record_id), fields)

    async def upsert(
        self, sobject: str, field: str, value: str, fields: dict[str, Any]
    ) -> str | None:
        """Upsert by external id: the new record's id when created, None when updated."""
        response = await self._call("PATCH", self._path(sobject, field, value), fields)
        if response is not None and response.status_code == 201:
            return str(response.json()["id"])
        return None

    async def aclose(self) -> None:
        await self._http.aclose()

    def _path(self, sobject: str, *parts: str) -> str:
        """``.../sobjects/<Type>/<Id>`` or ``.../sobjects/<Type>/<Field>/<value>``: names
        checked, the key percent-encoded (an external id may hold ``/``)."""
        names = [sobject, *parts[:-1]]
        if not all(_SAFE.match(name) for name in names) or not parts or not parts[-1]:
            raise PermanentDeliveryError(f"not a Salesforce record address: {names} {parts}")
        return "/".join([f"{self.base}/sobjects", *names, quote(parts[-1], safe="")])

    async def _call(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None = None,
        *,
        ok_missing: bool = False,
    ) -> httpx.Response | None:
        content = None if body is None else orjson.dumps(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        what = f"Salesforce {method} {url}"
        response = await budgeted_request(
            self._http,
            self.budget,
            what,
            "Salesforce",
            method,
            url,
            content=content,
            headers=headers,
        )
        self._read_usage(response)
        status = response.status_code
        if 200 <= status < 300:
            return response
        if status == 404 and ok_missing:
            return None
        raise _refusal(method, url, response)

    def _read_usage(self, response: httpx.Response) -> None:
        found = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if found is not None:
            self.usage = (int(found.group(1)), int(found.group(2)))


def _codes(response: httpx.Response) -> list[str]:
    try:
        body = response.json()
    except ValueError:
        return []
    if not isinstance(body, list):
        return []
    return [str(e.get("errorCode")) for e in body if isinstance(e, dict)]


def _refusal(method: str, url: str, response: httpx.Response) -> Exception:
    status = response.status_code
    codes = _codes(response)
    detail = f"Salesforce answered {status} to {method} {url}: {response.text[:_MAX_DETAIL]}"
    hinted = parse_retry_after(response.headers.get("Retry-After"))
    if "REQUEST_LIMIT_EXCEEDED" in codes:
        return TransientDeliveryError(detail, retry_after=max(hinted or 0, LIMIT_RETRY_AFTER_S))
    if "UNABLE_TO_LOCK_ROW" in codes:
        return TransientDeliveryError(detail, retry_after=hinted or LOCK_RETRY_AFTER_S)
    if status >= 500 or status in _TRANSIENT:
        return TransientDeliveryError(detail, retry_after=hinted)
    return PermanentDeliveryError(detail)

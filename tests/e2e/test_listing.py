"""``GET /v1/<kind>``: filters, opaque stable cursors, bounded limits, and ``GET /v1``."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Api, assert_problem


def _pages(api: Api, url: str) -> list[list[dict]]:
    pages = []
    while url:
        response = api.get(url, role="reader")
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        url = body["next"]
    return pages


def test_list_filters_by_customer_and_status_with_cursor_paging(api: Api) -> None:
    acme, other = api.customer(), api.customer(legal_name="Other Ltd")
    orders = [api.order(acme) for _ in range(5)]
    api.order(other)
    accepted = api.post(f"/v1/orders/{orders[1]}/accept", {"erp_order_number": "SO-1"}, role="erp")
    assert accepted.status_code == 200, accepted.text

    pages = _pages(api, f"/v1/orders?customer_id={acme}&limit=2")
    assert [len(p) for p in pages] == [2, 2, 1, 0][: len(pages)]
    listed = [item["id"] for page in pages for item in page]
    assert sorted(listed) == sorted(orders)  # each exactly once, nothing of the other customer
    # Oldest change first: the accepted order changed last.
    assert listed[-1] == orders[1]
    first = pages[0][0]
    assert first["url"] == f"/v1/orders/{first['id']}"
    assert first["customer_id"] == acme and first["entity"] == "order"
    assert api.get(first["url"], role="reader").json()["version"] == first["version"]

    only = api.get("/v1/orders?status=accepted", role="reader").json()
    assert [(i["id"], i["status"], i["version"]) for i in only["items"]] == [
        (orders[1], "accepted", 2)
    ]
    assert only["next"] is None

    customers = api.get("/v1/customers", role="reader").json()["items"]
    assert {c["id"] for c in customers} == {acme, other}


def test_updated_since_and_a_cursor_stay_stable_while_writes_go_on(api: Api) -> None:
    acme = api.customer()
    orders = [api.order(acme) for _ in range(3)]
    page = api.get("/v1/orders?limit=2", role="reader").json()
    since = page["items"][1]["modified_at"]
    newer = api.order(acme)  # written after the first page was read
    rest = _pages(api, page["next"])
    ids = [i["id"] for i in page["items"]] + [i["id"] for p in rest for i in p]
    assert ids == [*orders, newer]
    recent = api.get("/v1/orders", role="reader", params={"updated_since": since}).json()
    assert [i["id"] for i in recent["items"]] == [orders[1], orders[2], newer]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "query.limit"),
        ("limit=501", "query.limit"),
        ("limit=ten", "query.limit"),
        ("status=shipped", "query.status"),
        ("customer_id=nope", "query.customer_id"),
        ("updated_since=2026-01-01T00:00:00", "query.updated_since"),
        ("cursor=not%20base64", "query.cursor"),
        ("cursor=bm90LWEtY3Vyc29y", "query.cursor"),  # base64 of something else
    ],
)
def test_bad_list_parameters_are_422_problems(api: Api, query: str, field: str) -> None:
    response = api.get(f"/v1/orders?{query}", role="reader")
    assert response.status_code == 422, response.text
    body = assert_problem(response, 422, response.json()["code"], field=field)
    assert body["code"] in {"validation-failed", "invalid-cursor"}


def test_lists_need_a_read_key(api: Api) -> None:
    assert_problem(
        api.get("/v1/invoices", role=None), 401, api.get("/v1/invoices", role=None).json()["code"]
    )


def test_api_index_links_to_everything(api: Api) -> None:
    response = api.get("/v1", role=None)
    assert response.status_code == 200, response.text
    links = response.json()["links"]
    for kind in ("customers", "contracts", "orders", "invoices", "payments"):
        assert links[kind] == f"/v1/{kind}"
        assert api.get(links[kind], role="reader").status_code == 200
    for name in ("batch", "health", "ownership", "event_schemas", "openapi", "docs", "lookup"):
        assert name in links
    assert api.get(links["openapi"], role=None).status_code == 200

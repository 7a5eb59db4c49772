"""Facts and intentions over HTTP: what a system of record reports is recorded, what cannot
be true is refused, and an older report never overwrites a newer one."""

from __future__ import annotations

from tests.e2e.conftest import Api, order_body


def test_order_amended_after_erp_acceptance_awaits_acceptance_again(api: Api) -> None:
    cid = api.customer()
    oid = api.order(cid)
    assert api.post(f"/v1/orders/{oid}/validate", role="erp").status_code == 200
    accepted = api.post(f"/v1/orders/{oid}/accept", {"erp_order_number": "SO-7"}, role="erp")
    assert accepted.json()["state"]["status"] == "accepted"

    lines = order_body(cid)["lines"][:1]
    amended = api.post(f"/v1/orders/{oid}/amend", {"lines": lines}, role="crm")
    assert amended.status_code == 200, amended.text
    assert amended.json()["state"]["status"] == "placed"
    assert api.get(f"/v1/orders/{oid}").json()["state"]["status"] == "placed"

    again = api.post(f"/v1/orders/{oid}/accept", {"erp_order_number": "SO-7"}, role="erp")
    assert again.status_code == 200, again.text
    assert again.json()["state"]["status"] == "accepted"

"""Operator endpoints: API keys and recorded ownership conflicts (``admin`` only).

Why keys over HTTP as well as the CLI: an operator of a deployed hub has no shell on the
server's data folder; an admin key can hand out per-system keys remotely. Plaintext keys are
returned once and never stored.

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from starlette.responses import Response

from adapters.key_rules import CLIENT_ID_PATTERN, check_request, mint_refusal
from adapters.keys import DuplicateClient, KeyRingError, UnknownClient, hash_key
from api.errors import input_problem
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from api.schemas import Conflicts, CreatedKey, KeyList, KeyPublic, NewKey
from hub.application.service import Caller
from hub.domain.ownership import ADMIN

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["admin"])
    admin = require("admin")

    @router.get(
        "/conflicts",
        response_model=Conflicts,
        response_class=JSONBytes,
        operation_id="conflicts_list",
        responses=problems(401, 403, 422),
        summary="Refused writes of fields owned by another system, newest first",
    )
    def conflicts(
        caller: Annotated[Caller, Depends(admin)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        status: Annotated[
            str | None, Query(max_length=50, description="Only conflicts in this state.")
        ] = None,
    ) -> Response:
        return JSONBytes({"items": runtime.conflicts.recent(limit, status)})

    @router.get(
        "/keys",
        response_model=KeyList,
        response_class=JSONBytes,
        operation_id="keys_list",
        responses=problems(401, 403),
        summary="API keys (never the keys themselves)",
    )
    def list_keys(caller: Annotated[Caller, Depends(admin)]) -> Response:
        return JSONBytes({"items": [k.public() for k in runtime.keys.entries()]})

    @router.post(
        "/keys",
        status_code=201,
        response_model=CreatedKey,
        response_class=JSONBytes,
        operation_id="keys_create",
        responses=problems(400, 401, 403, 409, 422),
        summary="Create an API key for one system; the key is shown only in this response",
        description="A key mints only keys with no more rights than its own: scopes it "
        "holds, and its own system unless it is an `admin`-system key. Client ids are "
        "unique (409 if taken).",
    )
    def create_key(new: NewKey, caller: Annotated[Caller, Depends(admin)]) -> Response:
        client_id = new.client_id or f"{new.system}-{secrets.token_hex(3)}"
        try:
            scopes = check_request(client_id, new.system, new.scopes)
            refusal = mint_refusal(caller, new.system, scopes, admin_system=ADMIN)
            if refusal is not None:
                field = f"body.{refusal.field}"
                raise input_problem(403, "exceeds-own-rights", refusal.message, field)
            key = runtime.keys.create(client_id, new.system, scopes, expires_at=new.expires_at)
        except DuplicateClient as taken:
            raise input_problem(409, "client-id-taken", str(taken), "body.client_id") from None
        except KeyRingError as refused:
            field = "body.expires_at" if "expires_at" in str(refused) else "body"
            raise input_problem(422, "invalid-key-request", str(refused), field) from None
        digest = hash_key(key)
        info = next(k for k in runtime.keys.entries() if k.sha256_hex == digest)
        # The body holds a credential: no cache or proxy may keep it.
        return JSONBytes(
            {**info.public(), "key": key}, status_code=201, headers={"Cache-Control": "no-store"}
        )

    @router.delete(
        "/keys/{client_id}",
        response_model=KeyPublic,
        response_class=JSONBytes,
        operation_id="keys_revoke",
        responses=problems(401, 403, 404, 422),
        summary="Revoke a client's API key: it answers 401 from the next request on",
        description="Revoking twice changes nothing. The client id stays taken (its events "
        "and idempotency receipts name it). A key that is not an `admin`-system key may "
        "revoke only keys of its own system.",
    )
    def revoke_key(
        client_id: Annotated[str, Path(pattern=CLIENT_ID_PATTERN, max_length=100)],
        caller: Annotated[Caller, Depends(admin)],
    ) -> Response:
        where = "path.client_id"
        target = runtime.keys.find(client_id)
        if target is None:
            message = f"no key has client id {client_id!r} (see GET /v1/keys)"
            raise input_problem(404, "unknown-client", message, where)
        refusal = mint_refusal(caller, target.system, (), admin_system=ADMIN)
        if refusal is not None:
            raise input_problem(403, "exceeds-own-rights", refusal.message, where)
        try:
            info = runtime.keys.revoke(client_id)
        except UnknownClient as gone:  # removed from the file meanwhile
            raise input_problem(404, "unknown-client", str(gone), where) from None
        return JSONBytes(info.public())

    return router

"""Operator endpoints: API keys and recorded ownership conflicts (``admin`` only).

Why keys over HTTP as well as the CLI: an operator of a deployed hub has no shell on the
server's data folder; an admin key can hand out per-system keys remotely. Plaintext keys are
returned once and never stored.

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from adapters.keys import DuplicateClient, KeyRingError, check_request, hash_key, mint_refusal
from api.errors import input_problem
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from api.schemas import Conflicts, CreatedKey, KeyList, NewKey
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
        return JSONBytes({"items": runtime.committer.conflicts(limit, status)})

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
            key = runtime.keys.create(client_id, new.system, scopes)
        except DuplicateClient as taken:
            raise input_problem(409, "client-id-taken", str(taken), "body.client_id") from None
        except KeyRingError as refused:
            raise input_problem(422, "invalid-key-request", str(refused), "body") from None
        digest = hash_key(key)
        info = next(k for k in runtime.keys.entries() if k.sha256_hex == digest)
        return JSONBytes({**info.public(), "key": key}, status_code=201)

    return router

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

from adapters.keys import KeyRingError, hash_key
from api.errors import ProblemError
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from api.schemas import Conflicts, CreatedKey, KeyList, NewKey
from hub.application.service import Caller

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
        responses=problems(400, 401, 403, 422),
        summary="Create an API key for one system; the key is shown only in this response",
    )
    def create_key(new: NewKey, caller: Annotated[Caller, Depends(admin)]) -> Response:
        client_id = new.client_id or f"{new.system}-{secrets.token_hex(3)}"
        try:
            key = runtime.keys.create(client_id, new.system, new.scopes)
        except KeyRingError as refused:
            raise ProblemError(
                422,
                "invalid-key-request",
                str(refused),
                errors=[{"field": "body", "message": str(refused)}],
            ) from None
        digest = hash_key(key)
        info = next(k for k in runtime.keys.entries() if k.sha256_hex == digest)
        return JSONBytes({**info.public(), "key": key}, status_code=201)

    return router

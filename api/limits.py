"""Request limits answered as problem+json: body size (413), and NUL in the URL (422).

Why our own middleware rather than FastAPI's ``max_body_size``: that one answers with a
plain-text 413, and every error of this API is a problem document. A declared
``Content-Length`` over the limit is refused before anything is read; a chunked body is
counted as it arrives and refused (through the app's problem handlers) once it passes the
limit, so a client cannot make the hub buffer an unbounded body either way.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem_body, problem_response


def _too_large_detail(limit: int) -> str:
    return (
        f"the request body is larger than {limit:,} bytes; split it, or send bulk loads to "
        "POST /v1/batch"
    )


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        default: int,
        per_path: Mapping[str, int] | None = None,
        per_prefix: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.default = default
        self.per_path = dict(per_path or {})
        self.per_prefix = dict(per_prefix or {})

    def limit_for(self, path: str) -> int:
        """The exact path's limit, else the longest matching prefix's, else the default."""
        if path in self.per_path:
            return self.per_path[path]
        matches = [p for p in self.per_prefix if path.startswith(p)]
        return self.per_prefix[max(matches, key=len)] if matches else self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = _nul_in_url(scope)
        if where is not None:  # PostgreSQL text cannot hold NUL; no id or filter contains it
            detail = f"the {where} contains a NUL character (%00), which no value may hold"
            body = problem_body(
                422,
                "validation-failed",
                detail,
                instance=scope["path"].replace("\x00", "%00"),
                errors=[{"field": where, "message": detail, "type": "nul_character"}],
            )
            await problem_response(body)(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            body = problem_body(
                413, "payload-too-large", _too_large_detail(limit), instance=scope["path"]
            )
            await problem_response(body, {"Connection": "close"})(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, _too_large_detail(limit))
            return message

        await self.app(scope, counting_receive, send)


def _nul_in_url(scope: Scope) -> str | None:
    if "\x00" in scope["path"]:
        return "path"
    if b"%00" in scope.get("query_string", b""):
        return "query"
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None

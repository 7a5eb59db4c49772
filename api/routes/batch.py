"""``POST /v1/batch``: NDJSON bulk ingest for migrations and backfills.

Semantics are **per line**, not atomic: every line is checked on its own and good lines
commit even when others are refused. A migration of thousands of records should not be
thrown back because one record is bad; the response names each bad line by number so it can
be fixed and re-sent (with idempotency keys, re-sending the whole file is safe too).

Lines are checked in order against the store *plus earlier lines of the same batch*, so a
file may create a customer and then place its order. Valid lines are handed to
``Runtime.batch``, which commits many aggregates per transaction: the throughput lever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.errors import (
    ProblemError,
    body_locator,
    domain_problem,
    problem_body,
    result_status,
    validation_problem,
)
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from api.schemas import BatchLine, BatchResult
from hub.application.ports import StoreError
from hub.application.service import Caller, CommandRequest, CommandResult, Origin
from hub.domain.errors import DomainError

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

MAX_LINES = 50_000
MAX_BYTES = 64 * 1024 * 1024
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/jsonlines"})

DESCRIPTION = f"""\
Bulk ingest: the body is NDJSON (`Content-Type: application/x-ndjson`), one command per line:

```
{{"entity": "customer", "command": "register", "data": {{...}},
  "provenance": {{"source_record_id": "C-1"}}}}
{{"entity": "order", "command": "accept", "id": "<uuid>",
  "data": {{"erp_order_number": "SO-9"}}, "idempotency_key": "line-2"}}
```
(each object on one line; wrapped here for reading).

**Per-line semantics (not atomic):** each line is validated and decided on its own, in order,
seeing the effects of earlier lines; lines that pass commit (many per transaction) even if
other lines are refused. The response lists every non-blank line with its 1-based line
number: `status` 200/201 with the aggregate `id` and `version`, or an error `status` with a
problem body naming the bad field (`data.lines.0.unit_price`). Blank lines are ignored.
Re-sending a file with `idempotency_key` on each line is safe.

Limits: {MAX_LINES:,} lines and {MAX_BYTES // (1024 * 1024)} MiB per request (413 beyond).
Requires the `write` scope; ownership is checked per line as for single commands.
"""


def _too_large(what: str) -> ProblemError:
    return ProblemError(
        413,
        "payload-too-large",
        f"the batch is too large ({what}); send at most {MAX_LINES:,} lines and "
        f"{MAX_BYTES // (1024 * 1024)} MiB per request, splitting the file into several "
        "requests",
    )


class _Batch:
    """Parses lines into commands, runs them, and assembles per-line results."""

    def __init__(self, runtime: Runtime, caller: Caller, instance: str) -> None:
        self.runtime = runtime
        self.caller = caller
        self.instance = instance
        self._locators: dict[str, Callable[[str], str]] = {}  # one per command, not per line

    def run(self, raw_lines: list[bytes]) -> dict[str, Any]:
        if not any(raw.strip() for raw in raw_lines):
            raise ProblemError(
                400,
                "empty-batch",
                "the batch has no commands: send one JSON command per line "
                "(see the description of POST /v1/batch in /docs)",
            )
        results: dict[int, dict[str, Any]] = {}
        numbers: list[int] = []
        locators: list[Callable[[str], str]] = []

        def requests() -> Iterator[CommandRequest]:
            """Lines are parsed as the runtime asks for them, so parsing later lines overlaps
            with committing earlier ones."""
            for number, raw in enumerate(raw_lines, start=1):
                if not raw.strip():
                    continue
                parsed = self._parse(number, raw)
                if isinstance(parsed, dict):
                    results[number] = parsed
                    continue
                request, locate = parsed
                numbers.append(number)
                locators.append(locate)
                yield request

        outcomes = self.runtime.batch(requests(), lambda index: numbers[index])
        for number, outcome, locate in zip(numbers, outcomes, locators, strict=True):
            results[number] = self._result(number, outcome, locate)
        ordered = [results[n] for n in sorted(results)]
        accepted = sum(1 for r in ordered if r["status"] < 300)
        return {"accepted": accepted, "rejected": len(ordered) - accepted, "results": ordered}

    def _where(self, number: int) -> str:
        return f"{self.instance}#line={number}"

    def _error(self, number: int, problem: dict[str, Any]) -> dict[str, Any]:
        return {"line": number, "status": problem["status"], "error": problem}

    def _parse(
        self, number: int, raw: bytes
    ) -> dict[str, Any] | tuple[CommandRequest, Callable[[str], str]]:
        """A command request, or the line's error result."""
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as bad:
            return self._error(
                number,
                problem_body(
                    400,
                    "malformed-json",
                    f"line {number} is not valid JSON: {bad}",
                    instance=self._where(number),
                    errors=[{"field": "line", "message": str(bad), "type": "json_invalid"}],
                ),
            )
        try:
            line = BatchLine.model_validate(document)
        except ValidationError as invalid:
            return self._error(number, validation_problem(invalid, self._where(number)))
        try:
            spec = self.runtime.hub.spec(line.entity, line.command)
        except DomainError as unknown:
            return self._error(number, domain_problem(unknown, self._where(number)))
        locate = self._locators.get(spec.name + "/" + spec.entity)
        if locate is None:
            locate = _line_locator(body_locator(spec.input_model.model_fields, "data"))
            self._locators[spec.name + "/" + spec.entity] = locate
        try:
            payload = spec.input_model.model_validate(line.data)
        except ValidationError as invalid:
            return self._error(
                number, validation_problem(invalid, self._where(number), prefix="data")
            )
        except DomainError as refused:  # value objects (Money) check themselves on input
            return self._error(number, domain_problem(refused, self._where(number), locate))
        request = CommandRequest(
            entity=spec.entity,
            name=spec.name,
            payload=payload,
            caller=self.caller,
            aggregate_id=line.id,
            origin=Origin(**line.provenance.model_dump()),
            expected_version=line.expected_version,
            idempotency_key=line.idempotency_key,
        )
        return request, locate

    def _result(
        self,
        number: int,
        outcome: CommandResult | DomainError | StoreError,
        locate: Callable[[str], str],
    ) -> dict[str, Any]:
        if isinstance(outcome, DomainError | StoreError):
            return self._error(number, domain_problem(outcome, self._where(number), locate))
        result: dict[str, Any] = {
            "line": number,
            "status": result_status(outcome),
            "id": outcome.body["id"],
            "version": outcome.body["version"],
        }
        if outcome.replayed:
            result["replayed"] = True
        return result


def _line_locator(locate: Callable[[str], str]) -> Callable[[str], str]:
    """Headers of a single command are fields of a batch line."""
    renamed = {
        "If-Match": "expected_version",
        "Idempotency-Key": "idempotency_key",
        "path.id": "id",
    }

    def line_locate(field: str) -> str:
        if field in renamed:
            return renamed[field]
        where = locate(field)
        return renamed.get(where, where)

    return line_locate


def build(runtime: Runtime, require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1")
    writer = require("write")

    @router.post(
        "/batch",
        response_model=BatchResult,
        response_class=JSONBytes,
        operation_id="batch",
        tags=["batch"],
        summary="Bulk ingest of NDJSON commands (per-line results, not atomic)",
        description=DESCRIPTION,
        responses=problems(400, 401, 403, 413, 415),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-ndjson": {
                        # A sequence of lines, each a BatchLine (what OpenAPI 3.2 calls an
                        # item schema of a sequential media type), so generators and
                        # fuzzers know the shape of a line rather than "a string".
                        "schema": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/BatchLine"},
                            "minItems": 1,
                            "maxItems": MAX_LINES,
                            "description": "One BatchLine JSON object per line (NDJSON).",
                        },
                        "x-line-schema": {"$ref": "#/components/schemas/BatchLine"},
                    }
                },
            }
        },
    )
    async def batch(request: Request, caller: Caller = Depends(writer)) -> Response:  # noqa: B008
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media not in NDJSON_TYPES:
            raise ProblemError(
                415,
                "unsupported-media-type",
                "send the batch as NDJSON with 'Content-Type: application/x-ndjson' "
                "(one JSON command per line)",
                errors=[
                    {"field": "header.Content-Type", "message": "expected application/x-ndjson"}
                ],
            )
        body = await request.body()  # size-limited by api.limits.BodyLimitMiddleware
        raw_lines = body.split(b"\n")
        if len(raw_lines) > MAX_LINES and any(line.strip() for line in raw_lines[MAX_LINES:]):
            raise _too_large(f"{len(raw_lines):,} lines")
        worker = _Batch(runtime, caller, request.url.path)
        # Parsing and deciding thousands of lines is CPU and database work: off the loop.
        return JSONBytes(await run_in_threadpool(worker.run, raw_lines))

    return router

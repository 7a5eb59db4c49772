"""Bounded input types: every text, list and decimal a command accepts has a stated limit.

Why one module: an unbounded field is a way to stop the bus (an 8 MB ``reasons`` list was
once committed, and the relay then could not publish it), a NUL character is refused by
PostgreSQL's ``text`` and ``jsonb`` (a 500 instead of a 422), and a decimal of 1e28 overflows
the 28-digit context when it is rounded to a currency. Declaring the limits once, as types
used by both the commands and the domain's value objects, means the server enforces exactly
what the OpenAPI document states (``maxLength``, ``pattern``, ``maxItems``).

Decimals are accepted as JSON strings (``"19.99"``) or JSON integers, never as JSON numbers
with a fraction or exponent: a JSON parser reads those as binary floats, so ``0.1 + 0.2``
would arrive as ``0.30000000000000004`` and ``12345678901234567.89`` as ``...68``. Refusing
them (422 naming the field) is the only way to be exact with every JSON parser, the batch
endpoint's included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

#: Every text input: no NUL character (PostgreSQL cannot store one in text or jsonb).
NO_NUL = r"^[^\x00]*$"


#: Every character any of Python (``str.split``, ``re``'s ``\s``), Rust's regex or
#: ECMAScript counts as white space. A published "not blank" pattern excludes all of them, so
#: whichever engine a client's validator uses, what it accepts the server does too.
WHITESPACE = (
    r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f"
    r"\u3000\ufeff"
)
#: Text with at least one character that is not white space (and no NUL): names, which the
#: domain trims and refuses when blank.
NOT_BLANK = rf"^[^\x00]*[^\x00{WHITESPACE}][^\x00]*$"


def _text(max_length: int, min_length: int = 0) -> StringConstraints:
    return StringConstraints(min_length=min_length, max_length=max_length, pattern=NO_NUL)


def _stated(max_length: int, min_length: int, pattern: str) -> WithJsonSchema:
    """The JSON Schema of a text the domain checks further than pydantic can (a name must
    not be blank, a domain must be a host name): the server enforces ``pattern`` in the
    domain, with its own message naming the field; the document states it up front."""
    return WithJsonSchema(
        {"type": "string", "minLength": min_length, "maxLength": max_length, "pattern": pattern}
    )


# -- text --------------------------------------------------------------------------------

#: Legal and display names: never blank (the domain trims them and refuses blank ones).
Name = Annotated[str, _text(300), _stated(300, 1, NOT_BLANK)]
RequiredName = Annotated[str, _text(300, 1), _stated(300, 1, NOT_BLANK)]
#: SKUs, rate plans, document and order numbers.
Code = Annotated[str, _text(100)]
RequiredCode = Annotated[str, _text(100, 1)]
#: Short codes: tax ids, payment terms.
ShortCode = Annotated[str, _text(50)]
#: A tax id: compared without spaces, dots and dashes, so it needs one other character.
TAX_ID_PATTERN = rf"^[^\x00]*[^\x00{WHITESPACE}.\-][^\x00]*$"
TaxId = Annotated[str, _text(50), _stated(50, 1, TAX_ID_PATTERN)]
RequiredShortCode = Annotated[str, _text(50, 1)]
#: Ids of other systems, source records, correlation and causation ids, actors.
Reference = Annotated[str, _text(255)]
RequiredReference = Annotated[str, _text(255, 1)]
#: A line description.
Description = Annotated[str, _text(500)]
#: A free-text reason (cancellation, rejection, failure).
Reason = Annotated[str, _text(1000)]
RequiredReason = Annotated[str, _text(1000, 1)]
#: A web domain (DNS names are at most 253 characters). The domain also takes a URL and
#: keeps its host (``https://www.Example.com/about`` -> ``example.com``); the schema states
#: the plain host form, which is what clients should send: labels of letters, digits and
#: inner hyphens, a final label of 2-63 letters, and not just ``www.<tld>`` (``www.`` is
#: dropped, which would leave no domain).
DOMAIN_PATTERN = (
    r"^(?![Ww][Ww][Ww]\.[^.]*$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
Domain = Annotated[str, _text(253), _stated(253, 4, DOMAIN_PATTERN)]
#: Postal codes and address lines.
PostalCode = Annotated[str, _text(20)]
AddressLine = Annotated[str, _text(200)]
#: ISO 4217 code; whether Concord knows it is checked with the currency's exponent.
CurrencyCode = Annotated[str, _text(3, 3)]

#: Most reasons a rejection may carry: enough for any real review, not a payload channel.
MAX_REASONS = 50
Reasons = Annotated[list[RequiredReason], Field(min_length=1, max_length=MAX_REASONS)]

#: Most lines of an order or items of a contract; invoices allow more (usage detail).
MAX_LINES = 1000
MAX_INVOICE_LINES = 5000


# -- decimals ----------------------------------------------------------------------------

Sign = Literal["any", "non-negative", "positive"]

FLOAT_REFUSED = (
    'send decimal numbers as JSON strings such as "19.99" (or whole numbers as integers): '
    "a JSON number with a fraction or exponent is read as a binary float and is not exact"
)


@dataclass(frozen=True)
class ExactDecimal:
    """A decimal with at most ``integer_digits`` before and ``decimal_places`` after the point.

    Used as ``Annotated[Decimal, ExactDecimal(15, 3)]``. Strings must match :attr:`pattern`
    (no exponent, so the digits are what they look like); integers must be within range;
    floats and booleans are refused. The same pattern is published in the JSON Schema, so a
    value the schema accepts is one the server accepts.
    """

    integer_digits: int
    decimal_places: int
    sign: Sign = "any"

    @property
    def pattern(self) -> str:
        digits = rf"\d{{1,{self.integer_digits}}}"
        fraction = rf"(\.\d{{1,{self.decimal_places}}})?" if self.decimal_places else ""
        if self.sign == "positive":
            return rf"^(?!0*(\.0*)?$){digits}{fraction}$"
        minus = "-?" if self.sign == "any" else ""
        return rf"^{minus}{digits}{fraction}$"

    @property
    def max_length(self) -> int:
        return self.integer_digits + self.decimal_places + 2

    @property
    def bounds(self) -> tuple[int, int]:
        """Smallest and largest integer accepted."""
        largest = 10**self.integer_digits - 1
        smallest = {"any": -largest, "non-negative": 0, "positive": 1}[self.sign]
        return smallest, largest

    def describe(self) -> str:
        sign = {"any": "", "non-negative": "non-negative ", "positive": "positive "}[self.sign]
        places = f" and {self.decimal_places} after" if self.decimal_places else ""
        return (
            f"a {sign}decimal string with at most {self.integer_digits} digits before the "
            f'point{places} (no exponent), e.g. "19.99"'
        )

    def parse(self, value: Any) -> Decimal:
        if isinstance(value, bool):
            raise PydanticCustomError("invalid-value", "expected " + self.describe())
        if isinstance(value, float):
            raise PydanticCustomError("invalid-value", FLOAT_REFUSED)
        if isinstance(value, int):
            smallest, largest = self.bounds
            if not smallest <= value <= largest:
                raise PydanticCustomError(
                    "invalid-value",
                    "{value} is out of range: expected " + self.describe(),
                    {"value": value},
                )
            return Decimal(value)
        if isinstance(value, Decimal):
            if not value.is_finite() or abs(value.adjusted()) > self.max_length:
                raise PydanticCustomError(
                    "invalid-value", "out of range: expected " + self.describe()
                )
            value = format(value, "f")
        if not isinstance(value, str):
            raise PydanticCustomError("invalid-value", "expected " + self.describe())
        if len(value) > self.max_length or not self._compiled().fullmatch(value):
            shown = value if len(value) <= 40 else value[:37] + "..."
            raise PydanticCustomError(
                "invalid-value", "{value} is not " + self.describe(), {"value": repr(shown)}
            )
        return Decimal(value)

    def _compiled(self) -> re.Pattern[str]:
        return _patterns.setdefault(self.pattern, re.compile(self.pattern))

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            self.parse,
            serialization=core_schema.plain_serializer_function_ser_schema(
                _plain, when_used="json"
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        if handler.mode == "serialization":
            return {"type": "string", "pattern": self.pattern}
        # Only the string form is stated. The server also takes a JSON integer in range, but
        # JSON Schema cannot tell ``12`` from ``12.0`` (both are "integer"), and the second is
        # a binary float the server refuses: stating integers would promise that ``12.0`` is
        # accepted.
        smallest, largest = self.bounds
        return {
            "type": "string",
            "pattern": self.pattern,
            "maxLength": self.max_length,
            "description": self.describe().capitalize()
            + f"; a JSON integer from {smallest} to {largest} is accepted too, a JSON number "
            "with a fraction or exponent (even `12.0`) is not.",
        }


_patterns: dict[str, re.Pattern[str]] = {}


def _plain(value: Decimal) -> str:
    """JSON form of a decimal: positional, never ``1E+2``, so it reads back through the
    same pattern."""
    return format(value, "f")


#: Money amounts (the currency's exponent, at most 3, is checked by ``Money``).
Amount = Annotated[Decimal, ExactDecimal(15, 3)]
#: Quantities of a line or of usage.
Quantity = Annotated[Decimal, ExactDecimal(12, 6, "positive")]
NonNegativeQuantity = Annotated[Decimal, ExactDecimal(12, 6, "non-negative")]
#: Unit prices: orders at the currency's precision, contracts and invoices finer (rates).
OrderPrice = Annotated[Decimal, ExactDecimal(15, 3, "non-negative")]
RatePrice = Annotated[Decimal, ExactDecimal(12, 6, "non-negative")]
InvoicePrice = Annotated[Decimal, ExactDecimal(12, 6)]

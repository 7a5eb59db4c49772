"""README's "Who sends what": rendered from the ownership policy and the command catalogue.

Why generated: the policy (``adapters/ownership.yaml``) and the catalogue decide who may send
which command; a hand-written table drifts the first time either changes.
``tests/unit/test_who_sends_what.py`` compares this rendering with the README section between
the markers, and ``tests/e2e/test_readme_examples.py`` sends every worked example
(:data:`EXAMPLES`, rendered into the same section) to a real ``concord serve``.

Regenerate the section after changing either: ``python -m adapters.who_sends_what README.md``.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.application.commands import Catalogue, Command
from hub.domain.ownership import ADMIN, OwnershipPolicy

START = "<!-- who-sends-what:start (generated: python -m adapters.who_sends_what README.md) -->"
END = "<!-- who-sends-what:end -->"

#: The systems an API key can act as, in the order the README shows them.
KEY_SYSTEMS = ("crm", "erp", "billing")
#: Where the examples send their requests (``concord serve``'s default address).
BASE_URL = "http://127.0.0.1:8000"


# -- the table ---------------------------------------------------------------------------


def _sent_fields(spec: Command, policy: OwnershipPolicy, system: str) -> list[str] | None:
    """For a command whose input names the fields it writes: the ones ``system`` may send,
    or ``None`` if a field it must send is not the system's."""
    entity = policy.entities[spec.entity]
    owned = [name for name in spec.input_model.model_fields if system in entity.owners(name)]
    required = [n for n, info in spec.input_model.model_fields.items() if info.is_required()]
    if any(name not in owned for name in required) or not owned:
        return None
    return owned


def commands_of(spec: Command, policy: OwnershipPolicy, system: str) -> str | None:
    """How ``system`` may send ``spec`` (its name, with the fields it may set when the
    command writes only what it is sent), or ``None`` if it may not."""
    fixed = spec.fields_written(spec.input_model.model_construct())
    if any(system not in policy.owners(spec.entity, name) for name in fixed):
        return None
    label = f"`{spec.name}`" + (" (new)" if spec.creates else "")
    probe = spec.fields_written(spec.input_model.model_construct(**_all_set(spec)))
    if probe == fixed:
        return label
    sent = _sent_fields(spec, policy, system)
    return None if sent is None else f"{label}: {', '.join(sent)}"


def _all_set(spec: Command) -> dict[str, Any]:
    return dict.fromkeys(spec.input_model.model_fields)


def fields_of(policy: OwnershipPolicy, entity: str, system: str) -> str:
    ownership = policy.entities[entity]
    owned = [name for name, owners in ownership.fields.items() if system in owners]
    if system in ownership.default:
        owned.append("any field not listed")
    return ", ".join(owned) or "—"


def render_table(policy: OwnershipPolicy, catalogue: Catalogue) -> str:
    """One row per system and entity: the commands it sends and the fields it owns."""
    rows = [
        "| system | entity | commands it sends | fields it owns |",
        "|---|---|---|---|",
    ]
    entities = list(dict.fromkeys(spec.entity for spec in catalogue.all()))
    for system in KEY_SYSTEMS:
        for entity in entities:
            sent = [commands_of(spec, policy, system) for spec in catalogue.for_entity(entity)]
            names = [label for label in sent if label is not None]
            if names:
                owned = fields_of(policy, entity, system)
                rows.append(f"| {system} | {entity} | {'; '.join(names)} | {owned} |")
    rows.append(
        f"| {ADMIN} | every entity | every command (exempt from ownership; recorded with "
        "source `api` and the operator's client id); keys, conflicts, subscribers and dead "
        "letters with the `admin` scope | — |"
    )
    return "\n".join(rows)


def render_reads(policy: OwnershipPolicy) -> str:
    """Per system, the personal fields it reads and those it sees as ``"redacted"``."""
    rows = ['| system | personal data it reads | sees as `"redacted"` |', "|---|---|---|"]
    for system in KEY_SYSTEMS:
        reads: list[str] = []
        hidden: list[str] = []
        for entity, fields in policy.personal_data.items():
            for name, readers in fields.items():
                (reads if system in readers else hidden).append(f"{entity}.{name}")
        rows.append(f"| {system} | {', '.join(reads) or '—'} | {', '.join(hidden) or '—'} |")
    rows.append(f"| {ADMIN} | all of it | — |")
    return "\n".join(rows)


# -- the worked examples -----------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One worked example: make a key for ``system``, then send one command it owns.

    ``path`` and ``body`` may name a shell variable set by an earlier example's
    ``capture`` (``$CUSTOMER``): the README shows it as shell, the e2e test substitutes it.
    """

    system: str
    client_id: str
    what: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    capture: str | None = None

    @property
    def key_variable(self) -> str:
        return f"{self.system.upper()}_KEY"

    def key_command(self) -> list[str]:
        return ["keys", "create", "--system", self.system, "--client-id", self.client_id]


EXAMPLES: tuple[Example, ...] = (
    Example(
        system="crm",
        client_id="crm-main",
        what="registers the account (names and web domain are CRM's)",
        path="/v1/customers",
        body={"legal_name": "Acme GmbH", "display_name": "Acme", "web_domain": "acme.example"},
        headers={"Idempotency-Key": "acct-0017-create", "Concord-Source-Record-Id": "0017"},
        capture="CUSTOMER",
    ),
    Example(
        system="erp",
        client_id="erp-main",
        what="records its customer number for the account",
        path="/v1/customers/$CUSTOMER/assign_number",
        body={"customer_number": "C-10042"},
        headers={"Idempotency-Key": "erp-cust-10042"},
    ),
    Example(
        system="billing",
        client_id="billing-main",
        what="records a payment it collected",
        path="/v1/payments",
        body={
            "customer_id": "$CUSTOMER",
            "amount": {"amount": "250.00", "currency": "EUR"},
            "method": "wire",
            "received_at": "2026-01-05T09:00:00Z",
            "reference": "SEPA-2026-0001",
        },
        headers={"Idempotency-Key": "pay-2026-0001"},
    ),
    Example(
        system=ADMIN,
        client_id="ops-main",
        what="an operator links billing's id (only admin keys link another system's id)",
        path="/v1/customers/$CUSTOMER/link",
        body={"system": "billing", "external_id": "cus_Q2x9"},
        headers={"Idempotency-Key": "ops-link-cus_Q2x9"},
    ),
)


def render_example(example: Example) -> str:
    """The example as a shell snippet, as a newcomer types it after the Quickstart."""
    key = example.key_variable
    lines = [
        f"# {example.system}: {example.what}",
        f".venv/bin/concord {shlex.join(example.key_command())}   # prints the key once",
        f"{key}=cnc_...   # the key it printed",
    ]
    request = [f"curl -sf -X POST {BASE_URL}{example.path}", f'-H "Authorization: Bearer ${key}"']
    request.append("-H 'Content-Type: application/json'")
    request += [f"-H {shlex.quote(f'{name}: {value}')}" for name, value in example.headers.items()]
    body = json.dumps(example.body)
    # A body naming a variable is double-quoted so the shell expands it (the JSON holds no
    # backslash, backtick or other $), any other body single-quoted as it is.
    data = f'-d "{body.replace(chr(34), chr(92) + chr(34))}"' if "$" in body else f"-d '{body}'"
    request.append(data)
    command = " \\\n     ".join(request)
    if example.capture:
        command = f"{example.capture}=$({command} | jq -r .id)"
    return "\n".join([*lines, command])


def render_section(policy: OwnershipPolicy, catalogue: Catalogue) -> str:
    """Everything between the README markers."""
    examples = "\n\n".join(render_example(example) for example in EXAMPLES)
    return "\n\n".join(
        [render_table(policy, catalogue), render_reads(policy), f"```sh\n{examples}\n```"]
    )


def section_of(text: str) -> str:
    """The text between the markers of a README (``ValueError`` if they are missing)."""
    try:
        start = text.index(START) + len(START)
        end = text.index(END, start)
    except ValueError:
        raise ValueError(f"the README has no {START!r} ... {END!r} section") from None
    return text[start:end].strip("\n")


def write_section(path: Path, policy: OwnershipPolicy, catalogue: Catalogue) -> None:
    text = path.read_text()
    section_of(text)  # both markers are there
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    fresh = render_section(policy, catalogue)
    path.write_text(f"{head}{START}\n{fresh}\n{END}{tail}")


def main() -> None:  # pragma: no cover - a maintainer's tool
    from adapters.bootstrap import load_policy
    from hub.application.catalogue import build_catalogue

    policy, catalogue = load_policy(None), build_catalogue()
    if len(sys.argv) > 1:
        write_section(Path(sys.argv[1]), policy, catalogue)
    else:
        print(render_section(policy, catalogue))


if __name__ == "__main__":
    main()

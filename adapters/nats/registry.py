"""Which subscribers exist and what each receives: the declared target systems.

Why declarations are data: which events each owning system needs is a business decision
that will be refined with the quote-to-cash connectors (this first mapping is by aggregate
type and deliberately broad). A declaration names aggregates and/or single event types; it
becomes a :class:`SubscriberSpec` once a connector exists for it — today an
:class:`HttpConnector` to the URL configured in ``CONCORD_TARGETS``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from adapters.connectors.http import HttpConnector
from adapters.connectors.port import Connector
from adapters.nats.spec import ANY_TYPE, SubscriberSpec
from adapters.nats.subjects import Subjects
from adapters.settings import Settings
from hub.domain.catalog import AGGREGATES_BY_ENTITY, EVENTS_BY_NAME

__all__ = [
    "DECLARATIONS",
    "Declaration",
    "UnknownSubscriber",
    "build_specs",
    "check_targets",
    "http_connectors",
    "select",
]


@dataclass(frozen=True)
class Declaration:
    """A target system's subscription, before it has a connector."""

    name: str
    aggregates: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        unknown = [a for a in self.aggregates if a not in AGGREGATES_BY_ENTITY]
        unknown += [t for t in self.event_types if t not in EVENTS_BY_NAME]
        if unknown:
            raise ValueError(f"subscriber {self.name!r} names unknown kinds: {unknown}")
        if not self.aggregates and not self.event_types:
            raise ValueError(f"subscriber {self.name!r} receives nothing")

    def filter_subjects(self, subjects: Subjects) -> tuple[str, ...]:
        return tuple(subjects.aggregate(a) for a in self.aggregates) + tuple(
            subjects.of_type(t) for t in self.event_types
        )


DECLARATIONS: tuple[Declaration, ...] = (
    Declaration(
        "erp",
        ("customer", "order", "invoice", "payment"),
        description="ERP: customers, orders, invoices and payments",
    ),
    Declaration(
        "crm",
        ("order", "contract", "customer", "invoice", "payment"),
        description="CRM: the deal's milestones up to the first invoice paid",
    ),
    Declaration(
        "billing",
        ("contract", "order", "customer"),
        description="Billing: contracts, recurring order lines, customers",
    ),
)


class UnknownSubscriber(ValueError):
    """A subscriber name that is not declared or has no target configured."""


def build_specs(
    settings: Settings,
    *,
    connectors: Mapping[str, Connector] | None = None,
    declarations: Iterable[Declaration] = DECLARATIONS,
    **tuning: Any,
) -> dict[str, SubscriberSpec]:
    """Specs for every declaration that has a connector.

    ``connectors`` defaults to an HTTP connector per ``CONCORD_TARGETS`` entry. ``tuning``
    overrides spec fields (``max_deliver``, ``backoff`` ...) for all of them.
    """
    declared = {d.name: d for d in declarations}
    if connectors is None:
        connectors = http_connectors(settings, declared)
    subjects = Subjects(settings.nats_subject_prefix)
    specs: dict[str, SubscriberSpec] = {}
    for name, connector in connectors.items():
        declaration = declared.get(name)
        if declaration is None:
            raise UnknownSubscriber(f"no subscriber {name!r} is declared")
        spec = SubscriberSpec(
            name=name,
            filter_subjects=declaration.filter_subjects(subjects),
            handlers={ANY_TYPE: connector},
            description=declaration.description,
        )
        specs[name] = replace(spec, **tuning) if tuning else spec
    return specs


def http_connectors(
    settings: Settings,
    declarations: Iterable[Declaration] | Mapping[str, Declaration] = DECLARATIONS,
    *,
    besides: Collection[str] = (),
) -> dict[str, Connector]:
    """A signed HTTP connector per ``CONCORD_TARGETS`` entry (checked against the
    declarations), with that target's secrets; none for the targets in ``besides`` (they
    have a connector of their own)."""
    secrets = settings.target_secret_map()
    return {
        name: HttpConnector(url, secrets=secrets.get(name, ()))
        for name, url in check_targets(settings, declarations).items()
        if name not in besides
    }


def check_targets(
    settings: Settings,
    declarations: Iterable[Declaration] | Mapping[str, Declaration] = DECLARATIONS,
) -> dict[str, str]:
    """``CONCORD_TARGETS`` parsed and checked against the declarations (``ValueError``)."""
    names = (
        list(declarations) if isinstance(declarations, Mapping) else [d.name for d in declarations]
    )
    urls = settings.target_urls()
    stray = sorted(set(urls) - set(names))
    if stray:
        raise UnknownSubscriber(
            f"CONCORD_TARGETS names undeclared subscribers {stray}; declared: {', '.join(names)}"
        )
    return urls


def select(
    specs: Mapping[str, SubscriberSpec],
    names: Iterable[str] | None,
    declarations: Iterable[Declaration] = DECLARATIONS,
) -> list[SubscriberSpec]:
    """The specs to run: all of them for ``None``, else the named ones (clear errors)."""
    if names is None:
        return list(specs.values())
    chosen: list[SubscriberSpec] = []
    declared = [d.name for d in declarations]
    for name in names:
        if name in specs:
            chosen.append(specs[name])
        elif name in declared:
            raise UnknownSubscriber(
                f"subscriber {name!r} has no target: set CONCORD_TARGETS={name}=http://host/path"
            )
        else:
            raise UnknownSubscriber(
                f"no subscriber {name!r}; declared: {', '.join(declared) or '-'}"
            )
    return chosen

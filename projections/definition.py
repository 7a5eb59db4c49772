"""What a projection declares: name, version, upstream stores, tables, and ``apply``.

Why declarative tables rather than DDL strings: the runner creates the same tables twice, as
the live view and as the shadow a rebuild fills, and a BI reader needs every table and
column explained. Generating the DDL (with a ``COMMENT ON`` for each) from one definition
keeps both true by construction.

Why ``apply`` writes through a :class:`ViewCursor` with ``{table}`` placeholders: the
projection never knows which generation it writes (a rebuild writes the shadow tables while
the live ones keep serving), and it stays free of connection handling, so its logic is a
near-pure function of the event and the rows it has written before.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol

#: An event as the runner hands it over: the published envelope (see
#: ``hub.application.views.envelope``) with personal fields opened (or ``[erased]``).
Envelope = dict[str, Any]


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    """SQL type, e.g. ``uuid``, ``text``, ``bigint``, ``timestamptz``."""
    comment: str
    """What a BI reader needs to know: meaning, source system, personal-data treatment."""
    not_null: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    """Stable name BI tools use (the live table); a rebuild's shadow gets a suffix."""
    comment: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()
    """Secondary indexes, each a tuple of columns (for lookups other than by the key)."""

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: duplicate column names")
        indexed = [k for index in self.indexes for k in index]
        missing = [k for k in (*self.primary_key, *indexed) if k not in names]
        if missing:
            raise ValueError(f"table {self.name}: key or index names unknown columns {missing}")
        if not self.comment.strip() or any(not c.comment.strip() for c in self.columns):
            raise ValueError(f"table {self.name}: every table and column needs a comment")


@dataclass(frozen=True)
class View:
    """A SQL view over the projection's own tables, for BI: aggregates and joins that are
    queries of the rows (monthly sums, open items), so they never disagree with them.

    ``select`` names the tables as ``{table_name}`` placeholders. The runner (re)creates the
    view over the live tables whenever they are created or swapped in by a rebuild, so a view
    never points at a shadow table; ``columns`` are the view's output columns in order, each
    with its comment (the type is for the README)."""

    name: str
    comment: str
    select: str
    columns: tuple[Column, ...]

    def __post_init__(self) -> None:
        if not self.comment.strip() or any(not c.comment.strip() for c in self.columns):
            raise ValueError(f"view {self.name}: every view and column needs a comment")


class Position(NamedTuple):
    """Where an event sits: its store and its position in that store's notification log.

    A named tuple, not a frozen dataclass: a rebuild makes one per event, and a frozen
    dataclass's ``__init__`` costs several times a tuple's."""

    store: str
    position: int


class ViewCursor(Protocol):
    """The writes ``apply`` may make, inside the runner's batch transaction.

    Statements name the projection's tables as ``{table_name}`` placeholders (e.g.
    ``UPDATE {erp_customers} SET ...``); the runner fills in the generation being written.
    Parameters use ``%s``."""

    memo: dict[Any, Any]
    """What the projection chose to remember of the rows it has read or written in this
    generation, kept across batches. Why: a projection whose ``apply`` reads its own rows
    back (a check over stored facts) pays a round trip per read, which caps it near a
    thousand events a second; the runner is the only writer of its tables (one runner per
    projection, by advisory lock), so what it wrote and committed is still true. The runner
    empties it whenever that could stop holding: a batch that fails or is rolled back, a
    new session, a rebuild starting (the shadow's) or swapped in (the shadow's becomes the
    live one's), and past a size bound. Keep in it only what the writes of ``apply`` keep
    true, and update it as you write."""

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        """Send a write. It may be pipelined (sent without waiting for its result), so a
        failure may surface later; the runner then replays the batch one statement at a
        time, so the failure is reported at the event that caused it. It may also be held
        and sent together with the following writes of the same statement (a rebuild's run
        of inserts), so ``params`` must not be changed after the call."""

    def execute_one(self, statement: str, params: Sequence[Any], missing: str) -> None:
        """A write (UPDATE/DELETE without RETURNING) that must touch exactly one row; else
        :class:`LookupError` with ``missing`` is raised at this event (checked by the
        server inside a pipeline, so it costs no round trip)."""

    def execute_counted(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run a write at once and return the number of rows it touched (a round trip:
        prefer :meth:`execute` or :meth:`execute_one`)."""

    def fetchone(self, statement: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Run a query; its first row (or None)."""


class Projection(ABC):
    """One read model. Subclasses set the class attributes and implement :meth:`apply`."""

    name: ClassVar[str]
    """Stable identifier (``erp``): the runner's lock, tracking rows and CLI argument."""
    version: ClassVar[int]
    """Code version. Bump it whenever ``apply`` or the tables change: a runner that finds
    the view built by another version rebuilds it (into shadow tables) on start."""
    stores: ClassVar[tuple[str, ...]]
    """Upstream stores followed (``customers``, ``orders`` ...), each in its own order."""
    tables: ClassVar[tuple[Table, ...]]
    views: ClassVar[tuple[View, ...]] = ()
    """SQL views over ``tables`` (read-only, always over the live generation)."""
    title: ClassVar[str] = ""
    writes_only: ClassVar[bool] = False
    """``apply`` never reads its tables back and filters no write by a secondary-index
    column (it inserts, or updates by the primary key). Why declare it: a rebuild of such a
    projection fills its shadow tables with their primary keys only and builds the
    secondary indexes once the rows are in, before the swap (one sort instead of an index
    update per row: the bulk loader's trick); a projection that looks rows up by those
    columns would scan without them."""

    @abstractmethod
    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        """Write what ``event`` changes in the view. Called exactly once per event (per
        generation), in store order; raising stops the projection at this event (it is
        reported, never skipped). Events it does not care about are simply ignored."""

    def write_held(self, cursor: ViewCursor) -> None:
        """Write what :meth:`apply` held back, if anything (by default it holds nothing).

        Why a projection may hold writes: an aggregate's events usually come one after the
        other, and several updates of one row (or a row inserted then updated) can be one
        write of its final state, which the runner then sends with the other rows' writes
        of the same statement. The runner calls this at the end of each store's run of
        events in a batch, before that store's position moves (in the same transaction),
        and, when it replays a failed batch one statement at a time, after every event, so
        a write that fails is still reported at its own event. Keep what is held in
        ``cursor.memo`` (emptied with a failed batch) and empty it here."""
        del cursor  # nothing held by default

    def readable(self) -> list[str]:
        """Every relation a BI reader may select from: the tables, then the views."""
        return [t.name for t in self.tables] + [v.name for v in self.views]

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)

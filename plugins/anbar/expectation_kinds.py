"""anbar's own expectation types as data, without Great Expectations: what each needs and checks.

Everything about anbar's types that is not GX's business lives here, so that the ingest engine can read a
suite, know which table an expectation runs on and resolve a query's placeholders without importing GX
(a few seconds a process): the names of the types, the placeholders of context checks and how they are
filled (:func:`resolve_query`), and the SQL each context type writes from its kwargs (PostgreSQL's
dialect; ``{batch}`` is the delivery). :mod:`anbar.gx_custom` builds GX's classes from these, and
:mod:`anbar.engine.expectations` evaluates the same kinds in the pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from string import Formatter
from typing import Any

# Placeholders anbar fills in (GX fills {batch}).
CONTEXT_PLACEHOLDERS = ("raw", "previous", "period_start", "period_end")
DATASET_KEY = re.compile(r"^[a-z][a-z0-9_]*__[a-z][a-z0-9_]*$")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")

# Which partition an expectation runs on, by type; anything else runs on the clean one.
RAW_TYPES = frozenset({"expect_column_values_to_be_valid_calendar_date"})


def _ident(name: str) -> str:
    """A column name from a suite file, as SQL (validated: no quoting tricks can pass)."""
    if not _IDENT.match(name):
        raise ValueError(f"{name!r} is not a plain column name (lower-case letters, digits, _)")
    return name


def _tolerance(kwargs: dict[str, Any]) -> float:
    value = kwargs.get("tolerance")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10:
        raise ValueError(f"tolerance must be a share between 0 and 10 (0.2 = 20%), not {value!r}")
    return float(value)


def _table_row_count_to_be_within_tolerance_of_previous_period_query(kwargs: dict[str, Any]) -> str:
    """The number of rows differs from the previous accepted period by at most ``tolerance`` (a share).

    A nil return (an accepted delivery of no rows, exchange standard §12.4) on either side is not
    compared: it is no count to hold a month to, and reporting nothing is an accepted answer."""
    tol = _tolerance(kwargs)
    return (
        "select cur.n as row_count, prev.n as previous_row_count, "
        "round(100.0 * (cur.n - prev.n) / nullif(prev.n, 0), 1) as change_percent "
        "from (select count(*) as n from {batch}) cur, (select count(*) as n from {previous}) prev "
        f"where cur.n > 0 and prev.n > 0 and abs(cur.n - prev.n) > {tol!r} * prev.n"
    )


def _column_total_to_be_within_tolerance_of_previous_period_query(kwargs: dict[str, Any]) -> str:
    """A key total (sum, or count of distinct values) differs from the previous accepted period by at most
    ``tolerance``."""
    tol = _tolerance(kwargs)
    col = _ident(str(kwargs.get("column") or ""))
    agg = kwargs.get("aggregate") or "sum"
    expr = {"sum": f"sum({col})", "count_distinct": f"count(distinct {col})"}.get(agg)
    if expr is None:
        raise ValueError(f"aggregate must be sum or count_distinct, not {agg!r}")
    return (
        f"select cur.t as total, prev.t as previous_total, "
        "round(100.0 * (cur.t - prev.t) / nullif(prev.t, 0), 1) as change_percent "
        f"from (select {expr}::numeric as t from {{batch}}) cur, "
        f"(select {expr}::numeric as t from {{previous}}) prev "
        f"where abs(cur.t - prev.t) > {tol!r} * abs(prev.t)"
    )


def _persons_to_be_no_younger_than_in_previous_period_query(kwargs: dict[str, Any]) -> str:
    """A person present in the previous accepted period does not have a later birth date now."""
    pid = _ident(str(kwargs.get("id_column") or ""))
    birth = _ident(str(kwargs.get("birth_date_column") or "birth_date"))
    # GX renders {batch} as an aliased subquery: name it through a CTE, never alias it directly.
    return (
        f"with b as (select * from {{batch}}) select b._file, b._row_no, b.{pid}, b.{birth} from b "
        f"where exists (select 1 from {{previous}} p where p.{pid} = b.{pid} and p.{birth} < b.{birth})"
    )


def _persons_to_not_be_active_in_other_dataset_query(kwargs: dict[str, Any]) -> str:
    """Rows (optionally only those matching ``row_condition_sql``) whose person is in the latest accepted
    delivery of ``other_dataset`` (optionally only its rows matching ``other_condition_sql``)."""
    pid = _ident(str(kwargs.get("id_column") or ""))
    other = str(kwargs.get("other_dataset") or "")
    if not DATASET_KEY.match(other):
        raise ValueError(f"other_dataset must be a dataset key like cspf__pensioners, not {other!r}")
    other_pid = _ident(str(kwargs.get("other_id_column") or pid))
    where = [f"exists (select 1 from {{{other}}} o where o.{other_pid} = b.{pid}"]
    if kwargs.get("other_condition_sql"):
        where[0] += f" and ({kwargs['other_condition_sql']})"
    where[0] += ")"
    if kwargs.get("row_condition_sql"):
        where.append(f"({kwargs['row_condition_sql']})")
    return f"with b as (select * from {{batch}}) select b._file, b._row_no, b.{pid} from b where " + " and ".join(where)


@dataclass(frozen=True)
class ContextKind:
    """A context type: its SQL from the kwargs, whether that SQL names offending rows, and the columns it
    reports for one (besides ``_file``, ``_row_no``)."""

    type: str
    query_for: Callable[[dict[str, Any]], str]
    row_level: bool = True
    row_columns: Callable[[dict[str, Any]], list[str]] = field(default=lambda kwargs: [])


def _person_and_birth(kwargs: dict[str, Any]) -> list[str]:
    return [kwargs.get("id_column"), kwargs.get("birth_date_column") or "birth_date"]


def _person(kwargs: dict[str, Any]) -> list[str]:
    return [kwargs.get("id_column")]


CONTEXT_KINDS: dict[str, ContextKind] = {
    k.type: k
    for k in (
        ContextKind(
            "expect_table_row_count_to_be_within_tolerance_of_previous_period",
            _table_row_count_to_be_within_tolerance_of_previous_period_query,
            row_level=False,
        ),
        ContextKind(
            "expect_column_total_to_be_within_tolerance_of_previous_period",
            _column_total_to_be_within_tolerance_of_previous_period_query,
            row_level=False,
        ),
        ContextKind(
            "expect_persons_to_be_no_younger_than_in_previous_period",
            _persons_to_be_no_younger_than_in_previous_period_query,
            row_columns=_person_and_birth,
        ),
        ContextKind(
            "expect_persons_to_not_be_active_in_other_dataset",
            _persons_to_not_be_active_in_other_dataset_query,
            row_columns=_person,
        ),
    )
}


def placeholders(query: str) -> set[str]:
    """The ``{name}`` fields of a query (doubled braces are literal)."""
    return {f[1] for f in Formatter().parse(query) if f[1] is not None}


def resolve_query(query: str, tables: dict[str, str | None]) -> str:
    """Fill anbar's placeholders, keeping ``{batch}`` for GX and literal braces doubled.

    ``tables`` maps placeholder -> SQL text (a quoted table name or a date literal). A placeholder
    it maps to None, or does not map, is a table that does not exist: :class:`NotApplicable` is raised.
    """
    out: list[str] = []
    for literal, name, spec, conversion in Formatter().parse(query):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} takes no format spec or conversion")
        if name == "batch":
            out.append("{batch}")
            continue
        value = tables.get(name)  # absent from the context: nothing to compare with
        if value is None:
            raise NotApplicable(name)
        out.append(value.replace("{", "{{").replace("}", "}}"))
    return "".join(out)


class NotApplicable(LookupError):
    """A context table the check needs does not exist for this submission."""

    def __init__(self, placeholder: str):
        super().__init__(placeholder)
        self.placeholder = placeholder

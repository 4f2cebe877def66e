"""anbar's own Great Expectations (1.x) expectations: the checks GX lacks, all run inside PostgreSQL.

Importing this module registers them with GX, so suite files name them by ``type`` like any
built-in expectation (``"type": "expect_column_values_to_be_valid_person_id"``).

Two kinds:

*Column map expectations* (one verdict per row, GX counts and samples them, ``mostly``
works): the condition is a SQL expression over the column, evaluated by the server.

- ``expect_column_values_to_be_valid_person_id`` / ``..._valid_legal_entity_id``: check digits
  (``anbar.is_valid_person_id`` / ``anbar.is_valid_legal_entity_id``).
- ``expect_column_values_to_be_valid_calendar_date``: the text *as delivered* is a real date of
  its calendar (Jalali ``1404/07/31`` is not: month 7 has 30 days). Runs on the raw partition.
- ``expect_column_values_to_be_in_code_list``: the value is a code of a registry code list,
  looked up in ``ref.code_list_values`` (so the suite never holds a stale copy of the list).

*Context expectations* (SQL over the submission and other accepted deliveries): subclasses
of GX's ``UnexpectedRowsExpectation`` whose query anbar writes from the kwargs. The query may
name, besides GX's ``{batch}`` (this submission's clean partition):

- ``{raw}``: this submission's raw partition (every value as delivered, as text);
- ``{previous}``: the clean partition of the latest accepted delivery of the same dataset for
  the period before this one;
- ``{<org>__<dataset>}``: the clean partition of the latest accepted delivery of any registry
  dataset whose period started on or before this period's end (cross-supplier checks);
- ``{period_start}``, ``{period_end}``: this period's first day and the first day after it, as SQL
  date literals (``x >= {period_start} and x < {period_end}`` is "within the period").

anbar substitutes them before GX runs the query (:func:`resolve_query`). A check whose table
does not exist yet (the first period, a supplier with no accepted delivery) is *not applicable*
for that submission and does not fail.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

import great_expectations.compatibility.sqlalchemy as gx_sa
from great_expectations.compatibility import pydantic
from great_expectations.execution_engine import SqlAlchemyExecutionEngine
from great_expectations.expectations.core.unexpected_rows_expectation import (
    UnexpectedRowsExpectation,
)
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

from anbar.expectation_kinds import (  # noqa: F401  (re-exported: callers name them from here)
    CONTEXT_KINDS,
    CONTEXT_PLACEHOLDERS,
    DATASET_KEY,
    RAW_TYPES,
    NotApplicable,
    placeholders,
    resolve_query,
)

sa = gx_sa.sqlalchemy

# -- column map metrics (the SQL conditions) --------------------------------------------------------


def valid_person_id(column):
    return sa.func.anbar.is_valid_person_id(column)


def valid_legal_entity_id(column):
    return sa.func.anbar.is_valid_legal_entity_id(column)


def in_code_list(column, code_list: str):
    codes = sa.table("code_list_values", sa.column("code_list"), sa.column("code"), schema="ref")
    return sa.cast(column, sa.Text).in_(sa.select(codes.c.code).where(codes.c.code_list == code_list))


class ColumnValuesValidPersonId(ColumnMapMetricProvider):
    condition_metric_name = "column_values.anbar_valid_person_id"

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column, **kwargs):
        return valid_person_id(column)


class ColumnValuesValidLegalEntityId(ColumnMapMetricProvider):
    condition_metric_name = "column_values.anbar_valid_legal_entity_id"

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column, **kwargs):
        return valid_legal_entity_id(column)


def valid_calendar_date(column, calendar: str):
    """SQL (SQLAlchemy) true when a date text, as delivered, is a real date of ``calendar``, or blank.

    The converter's own normalisation (digits to ASCII), then: the text is looked up among the canonical
    ``YYYY/MM/DD`` dates of ``anbar.jalali_calendar`` (a hashed set, ~1 µs a row); only what is not there
    goes through the converter function (~13 µs a row), which takes ``YYYY/M/D`` or ``YYYY-M-D``, the same
    separator twice (exchange standard §8.2). Blank counts as missing: completeness is another rule's
    business.
    """
    text = sa.func.btrim(sa.cast(column, sa.Text))
    normal = sa.func.anbar.normalize_digits(text)
    cal = sa.table("jalali_calendar", sa.column("jalali"), sa.column("gregorian"), schema="anbar")
    if calendar == "jalali":
        known = sa.select(cal.c.jalali)
        converted = sa.func.anbar.jalali_to_date(normal)
    else:
        known = sa.select(sa.func.to_char(cal.c.gregorian, "YYYY/MM/DD"))
        converted = sa.func.anbar.gregorian_to_date(normal)
    # The function runs only for what the table does not hold: odd spellings, dates outside its
    # range, and the invalid dates themselves.
    return sa.or_(text == "", normal.in_(known), converted.isnot(None))


def condition_sql(condition) -> str:
    """A SQLAlchemy condition as PostgreSQL text (for anbar's own queries of offending rows)."""
    from sqlalchemy.dialects import postgresql

    return str(condition.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


class ColumnValuesValidCalendarDate(ColumnMapMetricProvider):
    condition_metric_name = "column_values.anbar_valid_calendar_date"
    condition_value_keys = ("calendar",)

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column, calendar, **kwargs):
        return valid_calendar_date(column, calendar)


class ColumnValuesInCodeList(ColumnMapMetricProvider):
    condition_metric_name = "column_values.anbar_in_code_list"
    condition_value_keys = ("code_list",)

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column, code_list, **kwargs):
        return in_code_list(column, code_list)


# The condition a value of each of anbar's column-map expectations must meet, by type: the metrics
# above evaluate it, and anbar.validation names the offending rows with the same SQL.
MAP_CONDITIONS: dict[str, Any] = {
    "expect_column_values_to_be_valid_person_id": lambda column, kwargs: valid_person_id(column),
    "expect_column_values_to_be_valid_legal_entity_id": lambda column, kwargs: valid_legal_entity_id(column),
    "expect_column_values_to_be_valid_calendar_date": lambda column, kwargs: valid_calendar_date(
        column, kwargs.get("calendar", "jalali")
    ),
    "expect_column_values_to_be_in_code_list": lambda column, kwargs: in_code_list(column, kwargs["code_list"]),
}


# -- column map expectations ---------------------------------------------------------------------------


class ExpectColumnValuesToBeValidPersonId(ColumnMapExpectation):
    """Values are national IDs of persons with a valid check digit (10 digits, mod 11)."""

    map_metric: ClassVar[str] = "column_values.anbar_valid_person_id"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly",)
    library_metadata: ClassVar[dict] = {"maturity": "production", "tags": ["anbar", "quality"], "contributors": []}


class ExpectColumnValuesToBeValidLegalEntityId(ColumnMapExpectation):
    """Values are national IDs of legal entities with a valid check digit (11 digits)."""

    map_metric: ClassVar[str] = "column_values.anbar_valid_legal_entity_id"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly",)
    library_metadata: ClassVar[dict] = {"maturity": "production", "tags": ["anbar", "quality"], "contributors": []}


class ExpectColumnValuesToBeValidCalendarDate(ColumnMapExpectation):
    """Date texts, as delivered, are real dates of the calendar (after digit normalisation)."""

    calendar: Literal["jalali", "gregorian"]
    map_metric: ClassVar[str] = "column_values.anbar_valid_calendar_date"
    success_keys: ClassVar[tuple[str, ...]] = ("calendar", "mostly")
    library_metadata: ClassVar[dict] = {"maturity": "production", "tags": ["anbar", "conversion"], "contributors": []}


class ExpectColumnValuesToBeInCodeList(ColumnMapExpectation):
    """Values are codes of the named registry code list (``ref.code_list_values``)."""

    code_list: str = pydantic.Field(min_length=1)
    map_metric: ClassVar[str] = "column_values.anbar_in_code_list"
    success_keys: ClassVar[tuple[str, ...]] = ("code_list", "mostly")
    library_metadata: ClassVar[dict] = {"maturity": "production", "tags": ["anbar", "system"], "contributors": []}


# -- context expectations (SQL written from the kwargs) -----------------------------------------------


class _ContextExpectation(UnexpectedRowsExpectation):
    """An UnexpectedRowsExpectation whose query anbar writes from typed kwargs."""

    unexpected_rows_query: str = ""

    @pydantic.root_validator(pre=True)
    def _write_query(cls, values: dict[str, Any]) -> dict[str, Any]:
        if not values.get("unexpected_rows_query"):
            values["unexpected_rows_query"] = cls.query_for(values)
        return values

    @classmethod
    def query_for(cls, kwargs: dict[str, Any]) -> str:
        return CONTEXT_KINDS[cls.expectation_type].query_for(kwargs)

    @classmethod
    def row_columns(cls, kwargs: dict[str, Any]) -> list[str]:
        """The dataset columns the query reports for an offending row (besides _file, _row_no)."""
        return CONTEXT_KINDS[cls.expectation_type].row_columns(kwargs)

    # The query is anbar's, not the suite author's: do not show it among the kwargs in files.
    generated_kwargs: ClassVar[tuple[str, ...]] = ("unexpected_rows_query",)


class ExpectTableRowCountToBeWithinToleranceOfPreviousPeriod(_ContextExpectation):
    """The number of rows differs from the previous accepted period by at most ``tolerance`` (a share).

    A nil return (an accepted delivery of no rows, exchange standard §12.4) on either side is not
    compared: it is no count to hold a month to, and reporting nothing is an accepted answer."""

    tolerance: float


class ExpectColumnTotalToBeWithinToleranceOfPreviousPeriod(_ContextExpectation):
    """A key total (sum, or count of distinct values) differs from the previous accepted period by at most
    ``tolerance``."""

    column: str
    aggregate: Literal["sum", "count_distinct"] = "sum"
    tolerance: float


class ExpectPersonsToBeNoYoungerThanInPreviousPeriod(_ContextExpectation):
    """A person present in the previous accepted period does not have a later birth date now."""

    id_column: str
    birth_date_column: str = "birth_date"


class ExpectPersonsToNotBeActiveInOtherDataset(_ContextExpectation):
    """Rows (optionally only those matching ``row_condition_sql``) whose person is in the latest accepted
    delivery of ``other_dataset`` (optionally only its rows matching ``other_condition_sql``)."""

    id_column: str
    other_dataset: str
    other_id_column: str | None = None
    row_condition_sql: str | None = None
    other_condition_sql: str | None = None


CONTEXT_TYPES: dict[str, type[_ContextExpectation]] = {
    cls.__dict__.get("expectation_type") or "": cls
    for cls in (
        ExpectTableRowCountToBeWithinToleranceOfPreviousPeriod,
        ExpectColumnTotalToBeWithinToleranceOfPreviousPeriod,
        ExpectPersonsToBeNoYoungerThanInPreviousPeriod,
        ExpectPersonsToNotBeActiveInOtherDataset,
    )
}

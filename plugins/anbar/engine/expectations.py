"""Great Expectations' semantics, evaluated by the pass in DuckDB.

The suites stay GX 1.x files (``expectations/<org>__<dataset>.json``) and GX stays the contract: for every
expectation type listed in :data:`EVALUATED`, :func:`evaluate` gives what GX 1.24's SQL engine gives on
PostgreSQL for the same rows — the same ``success``, the same ``element_count``, ``missing_count``,
``unexpected_count`` and percentages, the same offending rows — in GX's own result format
(``result_format`` SUMMARY, the unexpected rows named by ``_file`` and ``_row_no``).
``tests/validation/test_engine_differential.py`` runs every evaluated type through GX on PostgreSQL and
through :func:`evaluate` on the same crafted data and demands exactly that.

A type that is not in :data:`EVALUATED` (or whose kwargs the pass does not handle, such as
``row_condition``: :func:`evaluable` says) is left to GX on PostgreSQL by the caller.

The relations an evaluation reads (DuckDB relation names, see :class:`Relations`):

- ``clean``: this delivery's converted rows (``_file``, ``_row_no``, the dataset's columns typed as in
  PostgreSQL: text VARCHAR, integer INTEGER, bigint BIGINT, date DATE, boolean BOOLEAN); rows that could
  not be converted are not in it, as they are not in the clean partition GX used to validate;
- ``raw``: every delivered row, its values as delivered (VARCHAR), for the expectations that look at
  values as delivered (``anbar.suites.expectation_table`` says which);
- ``context``: the typed rows of other accepted deliveries the context expectations compare with
  (``previous``; another dataset's key such as ``cspf__pensioners``), or None where there is none (the
  expectation is then not applicable, as in :func:`anbar.gx_custom.resolve_query`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Relations:
    clean: str
    raw: str
    context: dict[str, str | None] = field(default_factory=dict)
    period_start: dt.date | None = None
    period_end: dt.date | None = None  # the first day after the period


@dataclass
class Evaluation:
    """One expectation's outcome, as GX reports it.

    ``result`` is GX's ``result`` dict for the expectation (SUMMARY format with ``partial_unexpected_count``
    samples and ``unexpected_index_column_names`` ``["_file", "_row_no"]``; for table expectations the
    ``observed_value``). ``failing_rows`` is DuckDB SQL selecting ``_file, _row_no`` of every row the
    expectation finds unexpected, or None for a finding about the table as a whole.
    """

    config: dict[str, Any]
    success: bool
    result: dict[str, Any]
    exception_info: dict[str, Any] = field(default_factory=dict)
    failing_rows: str | None = None
    not_applicable: str | None = None  # the context relation it needs does not exist


# Filled in by the implementation: the expectation types the pass evaluates itself.
EVALUATED: frozenset[str] = frozenset()


def evaluable(config: dict[str, Any]) -> bool:
    """Whether :func:`evaluate` handles this expectation (type and kwargs); else GX runs it on PostgreSQL."""
    return config.get("type") in EVALUATED

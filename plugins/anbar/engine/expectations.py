"""Great Expectations' semantics, evaluated by the pass in DuckDB.

The suites stay GX 1.x files (``expectations/<org>__<dataset>.json``) and GX stays the contract: for every
expectation type listed in :data:`EVALUATED`, :func:`evaluate` gives what GX 1.24's SQL engine gives on
PostgreSQL for the same rows — the same ``success``, the same ``element_count``, ``missing_count``,
``unexpected_count`` and percentages, the same offending rows — in GX's own result format
(``result_format`` SUMMARY, the unexpected rows named by ``_file`` and ``_row_no``; for the expectations GX
answers with a query's rows, :data:`ROW_QUERY_TYPES`, the COMPLETE result anbar.validation asks for).
``tests/validation/test_engine_differential.py`` runs every evaluated type through GX on PostgreSQL and
through :func:`evaluate` on the same crafted data and demands exactly that.

A type that is not in :data:`EVALUATED`, or whose kwargs or column types the pass does not handle exactly
(``row_condition``, a regular expression RE2 cannot read the way PostgreSQL does, a text compared by
collation, a value GX itself cannot write into its query...), is left to GX on PostgreSQL by the caller:
``evaluable(config, relation_schema(con, relations))`` says which, :func:`why_not_evaluable` why, and
:func:`evaluate` refuses (:class:`NotEvaluable`) what is not. Nothing is approximated.

The relations an evaluation reads (DuckDB relation names, as SQL, see :class:`Relations`):

- ``clean``: this delivery's converted rows (``_file``, ``_row_no``, the dataset's columns typed as in
  PostgreSQL: text VARCHAR, integer INTEGER, bigint BIGINT, date DATE, boolean BOOLEAN); rows that could
  not be converted are not in it, as they are not in the clean partition GX used to validate;
- ``raw``: every delivered row, its values as delivered (VARCHAR), for the expectations that look at
  values as delivered (``anbar.suites.expectation_table`` says which);
- ``context``: the typed rows of other accepted deliveries the context expectations compare with
  (``previous``; another dataset's key such as ``cspf__pensioners``), or None where there is none (the
  expectation is then not applicable, as in :func:`anbar.gx_custom.resolve_query`).

Each is read more than once (one aggregate scan, a GROUP BY per key, a query per context check, a LIMIT
query per failed expectation for its samples): a table or a columnar file, not a view that converts. The
connection is :func:`anbar.engine.duck.connect`'s, with its date lookups and the registry's code lists.
Samples are the first offending rows in the relation's order, as PostgreSQL's LIMIT queries read a
partition loaded in file order.

How it runs, for speed: every row-level verdict is a column of a projection computed once a row, and every
column-map expectation of a relation is one ``count(*) FILTER`` of ONE aggregate scan of that relation, which
also gives the non-null counts and the sums, minima, maxima and medians the aggregate expectations ask for;
samples are then fetched for the expectations that found something. Uniqueness is one GROUP BY per key;
the context expectations are one query each (a hash join against the other relation); the arithmetic GX
does in Python (percentages, ``mostly``, bounds) is done here the same way. GX is never imported: the
kwargs are read here, only in the forms whose meaning is certain.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from string import Formatter
from typing import Any

from anbar.engine.duck import literal


@dataclass(frozen=True)
class Relations:
    clean: str
    raw: str
    context: dict[str, str | None] = field(default_factory=dict)
    period_start: dt.date | None = None
    period_end: dt.date | None = None  # the first day after the period
    lookups: bool = False  # the tables of every day's spellings are there (anbar.engine.duck.install_lookups)


@dataclass
class Evaluation:
    """One expectation's outcome, as GX reports it.

    ``result`` is GX's ``result`` dict for the expectation (SUMMARY format with ``partial_unexpected_count``
    samples and ``unexpected_index_column_names`` ``["_file", "_row_no"]``; for table expectations the
    ``observed_value``; for the context expectations, which are GX unexpected-rows expectations, what anbar
    asks GX for today (COMPLETE: ``observed_value`` and ``details.unexpected_rows``, at most 200 rows)).
    ``failing_rows`` is DuckDB SQL selecting ``_file, _row_no`` of every row the expectation finds
    unexpected (whether it failed or not), or None for a finding about the table as a whole and for an
    expectation that is not applicable.
    """

    config: dict[str, Any]
    success: bool
    result: dict[str, Any]
    exception_info: dict[str, Any] = field(default_factory=lambda: dict(_NO_EXCEPTION))
    failing_rows: str | None = None
    not_applicable: str | None = None  # the context relation it needs does not exist


_NO_EXCEPTION = {"raised_exception": False, "exception_traceback": None, "exception_message": None}
# GX fetches at most this many rows of an unexpected-rows query (great_expectations.constants).
MAX_RESULT_RECORDS = 200
INDEX_COLUMNS = ["_file", "_row_no"]

NOT_NULL = "expect_column_values_to_not_be_null"
NULL = "expect_column_values_to_be_null"
IN_SET = "expect_column_values_to_be_in_set"
NOT_IN_SET = "expect_column_values_to_not_be_in_set"
BETWEEN = "expect_column_values_to_be_between"
MATCH_REGEX = "expect_column_values_to_match_regex"
NOT_MATCH_REGEX = "expect_column_values_to_not_match_regex"
UNIQUE = "expect_column_values_to_be_unique"
COMPOUND_UNIQUE = "expect_compound_columns_to_be_unique"
A_GREATER_THAN_B = "expect_column_pair_values_a_to_be_greater_than_b"
MEDIAN = "expect_column_median_to_be_between"
MEAN = "expect_column_mean_to_be_between"
MIN = "expect_column_min_to_be_between"
MAX = "expect_column_max_to_be_between"
SUM = "expect_column_sum_to_be_between"
ROW_COUNT_BETWEEN = "expect_table_row_count_to_be_between"
ROW_COUNT_EQUAL = "expect_table_row_count_to_equal"
VALID_PERSON_ID = "expect_column_values_to_be_valid_person_id"
VALID_LEGAL_ENTITY_ID = "expect_column_values_to_be_valid_legal_entity_id"
VALID_CALENDAR_DATE = "expect_column_values_to_be_valid_calendar_date"
IN_CODE_LIST = "expect_column_values_to_be_in_code_list"
ROW_COUNT_VS_PREVIOUS = "expect_table_row_count_to_be_within_tolerance_of_previous_period"
TOTAL_VS_PREVIOUS = "expect_column_total_to_be_within_tolerance_of_previous_period"
NO_YOUNGER = "expect_persons_to_be_no_younger_than_in_previous_period"
NOT_ACTIVE_ELSEWHERE = "expect_persons_to_not_be_active_in_other_dataset"
ROWS_QUERY = "unexpected_rows_expectation"

# The expectation types the pass evaluates itself (when :func:`evaluable` agrees for the kwargs).
EVALUATED: frozenset[str] = frozenset(
    {
        NOT_NULL,
        NULL,
        IN_SET,
        NOT_IN_SET,
        BETWEEN,
        MATCH_REGEX,
        NOT_MATCH_REGEX,
        UNIQUE,
        COMPOUND_UNIQUE,
        A_GREATER_THAN_B,
        MEDIAN,
        MEAN,
        MIN,
        MAX,
        SUM,
        ROW_COUNT_BETWEEN,
        ROW_COUNT_EQUAL,
        VALID_PERSON_ID,
        VALID_LEGAL_ENTITY_ID,
        VALID_CALENDAR_DATE,
        IN_CODE_LIST,
        ROW_COUNT_VS_PREVIOUS,
        TOTAL_VS_PREVIOUS,
        NO_YOUNGER,
        NOT_ACTIVE_ELSEWHERE,
        ROWS_QUERY,
    }
)
# Which relation an expectation reads by default (anbar.gx_custom.RAW_TYPES, not imported: it imports GX).
RAW_TYPES = frozenset({VALID_CALENDAR_DATE})
CONTEXT_TYPES = frozenset({ROW_COUNT_VS_PREVIOUS, TOTAL_VS_PREVIOUS, NO_YOUNGER, NOT_ACTIVE_ELSEWHERE})
# The expectations GX answers with the rows of a query (anbar.suites.is_row_query): their result is the count
# and the first rows, as anbar asks GX for them (COMPLETE).
ROW_QUERY_TYPES = CONTEXT_TYPES | {ROWS_QUERY}

# DuckDB types of the clean and raw relations, by the PostgreSQL type they stand for.
TEXT, INTEGER, BIGINT, DATE = "VARCHAR", "INTEGER", "BIGINT", "DATE"
INTEGERS = frozenset({INTEGER, BIGINT})

Schema = Mapping[str, Mapping[str, str]]  # relation role (clean, raw, previous, <org>__<dataset>) -> column -> type


class NotEvaluable(ValueError):
    """The pass cannot give GX's exact result for this expectation: GX on PostgreSQL runs it."""


# -- PostgreSQL regular expressions (ARE) in RE2 -------------------------------------------------------

# What PostgreSQL's \s and [[:space:]] match in the warehouse's C.UTF-8 locale (libc: iswspace). The
# differential test asks the server for every code point and compares.
PG_SPACE = "\t\n\x0b\x0c\r \u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2008\u2009\u200a\u2028\u2029\u205f\u3000"
PG_DIGIT = "0123456789"
# PostgreSQL's limit on a bound {m,n} (RE_DUPMAX); beyond it the server refuses the expression.
_PG_DUPMAX = 255
_CHAR_ESCAPES = {
    "a": "\x07",
    "b": "\x08",
    "B": "\\",
    "e": "\x1b",
    "f": "\x0c",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\x0b",
}
_CLASS_ESCAPES = {"d": (PG_DIGIT, False), "D": (PG_DIGIT, True), "s": (PG_SPACE, False), "S": (PG_SPACE, True)}


class UnsupportedRegex(NotEvaluable):
    """A PostgreSQL regular expression the translation does not carry over exactly."""


def _re2_char(c: str) -> str:
    return c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}"


def _re2_class(ranges: Sequence[tuple[str, str]], negated: bool) -> str:
    body = "".join(_re2_char(a) if a == b else f"{_re2_char(a)}-{_re2_char(b)}" for a, b in ranges)
    return f"[{'^' if negated else ''}{body}]"


class _RegexReader:
    """A recursive-descent reader of the PostgreSQL ARE subset whose meaning RE2 shares, writing RE2.

    Supported: literals, ``.``, ``^``, ``$``, ``\\A``, ``\\Z``, groups (capturing or ``(?:``), ``|``, the
    quantifiers ``* + ? {m} {m,} {m,n}`` (greedy or not), bracket expressions with ranges, the
    character-entry escapes (``\\uXXXX``, ``\\UXXXXXXXX``, ``\\xhh``, ``\\n``, ``\\t``...), ``\\d \\D \\s \\S``
    (PostgreSQL's classes, spelt out) and an escaped non-alphanumeric character. Refused: back-references
    and octal escapes, ``\\w`` and named classes (their members depend on the server's locale tables),
    word boundaries, lookaround, embedded options and directors, collating elements, and anything
    PostgreSQL would reject. Every literal is written as ``\\x{...}`` and ``(?s)`` makes ``.`` match a
    newline as in PostgreSQL; ``^``/``$`` already mean the ends of the text in both.
    """

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0

    def fail(self, why: str) -> UnsupportedRegex:
        return UnsupportedRegex(f"regex {self.p!r} at {self.i}: {why}")

    def peek(self, k: int = 0) -> str:
        return self.p[self.i + k] if self.i + k < len(self.p) else ""

    def read(self) -> str:
        out = self.alternation()
        if self.i != len(self.p):
            raise self.fail("unbalanced ')'")
        return "(?s)" + out

    def alternation(self) -> str:
        branches = [self.branch()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.branch())
        return "|".join(branches)

    def branch(self) -> str:
        out = []
        while self.peek() not in ("", "|", ")"):
            atom, quantifiable = self.atom()
            quantifier = self.quantifier()
            if quantifier and not quantifiable:
                raise self.fail("a quantifier after an anchor")
            out.append(atom + quantifier)
        return "".join(out)

    def quantifier(self) -> str:
        c = self.peek()
        if c in ("*", "+", "?"):
            self.i += 1
            q = c
        elif c == "{":
            m = re.compile(r"\{([0-9]+)(,([0-9]*))?\}").match(self.p, self.i)
            if m is None:
                raise self.fail("'{' that does not start a bound {m}, {m,} or {m,n}")
            low = int(m.group(1))
            high = None if m.group(2) and not m.group(3) else int(m.group(3) or m.group(1))
            if low > _PG_DUPMAX or (high is not None and (high > _PG_DUPMAX or high < low)):
                raise self.fail("a bound PostgreSQL refuses")
            self.i = m.end()
            q = f"{{{low},{'' if high is None else high}}}" if m.group(2) else f"{{{low}}}"
        else:
            return ""
        if self.peek() == "?":  # non-greedy: the same strings match
            self.i += 1
            q += "?"
        if self.peek() in ("*", "+", "?", "{"):
            raise self.fail("a quantifier of a quantifier")
        return q

    def atom(self) -> tuple[str, bool]:
        c = self.peek()
        if c == "(":
            if self.peek(1) == "?":
                if self.peek(2) != ":":
                    raise self.fail("lookaround or embedded options")
                self.i += 3
            else:
                self.i += 1
            inner = self.alternation()
            if self.peek() != ")":
                raise self.fail("unclosed '('")
            self.i += 1
            return f"(?:{inner})", True
        if c in ("*", "+", "?", "{"):
            raise self.fail("a quantifier with nothing to repeat")
        self.i += 1
        if c == ".":
            return ".", True
        if c in ("^", "$"):
            return c, False
        if c == "[":
            return self.bracket(), True
        if c == "\\":
            return self.escape()
        return _re2_char(c), True

    def escape(self) -> tuple[str, bool]:
        c = self.peek()
        if c == "":
            raise self.fail("a trailing backslash")
        if c in ("A", "Z"):
            self.i += 1
            return ("\\A" if c == "A" else "\\z"), False
        if c in _CLASS_ESCAPES:
            self.i += 1
            chars, negated = _CLASS_ESCAPES[c]
            return _re2_class(_ranges(chars), negated), True
        return _re2_char(self.char_entry()), True

    def char_entry(self) -> str:
        """The character of an escape naming one (the backslash already read)."""
        c = self.peek()
        self.i += 1
        if not c.isascii() or not c.isalnum():
            return c
        if c in _CHAR_ESCAPES:
            return _CHAR_ESCAPES[c]
        if c in ("u", "U", "x"):
            if c == "x":
                m = re.compile(r"[0-9A-Fa-f]+").match(self.p, self.i)
            else:
                m = re.compile(r"[0-9A-Fa-f]{%d}" % (4 if c == "u" else 8)).match(self.p, self.i)  # noqa: UP031
            if m is None:
                raise self.fail(f"\\{c} without its hexadecimal digits")
            code = int(m.group(), 16)
            if not 0 < code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise self.fail("an escape of no character")
            self.i = m.end()
            return chr(code)
        raise self.fail(f"the escape \\{c}")

    def bracket(self) -> str:
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        members: list[tuple[str, str]] = []
        negated_members = False
        first = True
        while True:
            c = self.peek()
            if c == "":
                raise self.fail("unclosed '['")
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if c == "[" and self.peek(1) in (":", ".", "="):
                raise self.fail("a named class, collating element or equivalence class")
            if c == "\\" and self.peek(1) in _CLASS_ESCAPES:
                chars, neg = _CLASS_ESCAPES[self.peek(1)]
                if neg:
                    raise self.fail("a negated class escape inside brackets")
                negated_members = negated_members or neg
                self.i += 2
                members += _ranges(chars)
                if self.peek() == "-" and self.peek(1) != "]":
                    raise self.fail("a range from a class")
                continue
            low = self.bracket_char()
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.i += 1
                if self.peek() == "[":
                    raise self.fail("a range to a bracket construct")
                high = self.bracket_char()
                if ord(high) < ord(low):
                    raise self.fail("a range out of order")
                if self.peek() == "-" and self.peek(1) != "]":
                    raise self.fail("a range continued by '-'")
                members.append((low, high))
            else:
                members.append((low, low))
        return _re2_class(members, negated)

    def bracket_char(self) -> str:
        c = self.peek()
        self.i += 1
        if c == "\\":
            if self.peek() == "":
                raise self.fail("a trailing backslash")
            return self.char_entry()
        return c


def _ranges(chars: str) -> list[tuple[str, str]]:
    return [(c, c) for c in chars]


def pg_regex_to_re2(pattern: str) -> str:
    """The RE2 expression (for DuckDB's ``regexp_matches``) matching exactly the strings PostgreSQL's
    ``text ~ pattern`` matches, in the warehouse's locale; :class:`UnsupportedRegex` when that cannot be
    guaranteed."""
    if "\x00" in pattern:
        raise UnsupportedRegex("a NUL character")
    return _RegexReader(pattern).read()


# -- PostgreSQL numeric division (what avg() and the change percentages give) --------------------------

_NBASE_DIGITS = 4  # PostgreSQL's numeric stores base-10000 digits (DEC_DIGITS)
_MIN_SIG_DIGITS = 16  # NUMERIC_MIN_SIG_DIGITS
_MAX_DISPLAY_SCALE = 1000


def _scale(d: Decimal) -> int:
    exponent = d.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _weight_and_first_digit(d: Decimal) -> tuple[int, int]:
    """PostgreSQL's weight (position of the first base-10000 digit) and that digit; (0, 0) for zero."""
    if d == 0:
        return 0, 0
    d = abs(d)
    exponent10 = d.adjusted()  # the power of ten of the first decimal digit
    weight = exponent10 // _NBASE_DIGITS
    return weight, int(d.scaleb(-_NBASE_DIGITS * weight))


def pg_numeric_div(a: Decimal, b: Decimal) -> Decimal:
    """``a / b`` as PostgreSQL's ``numeric_div`` gives it: the scale of ``select_div_scale``, rounded half away
    from zero (``div_var`` with rounding)."""
    w1, f1 = _weight_and_first_digit(a)
    w2, f2 = _weight_and_first_digit(b)
    qweight = w1 - w2 - (1 if f1 <= f2 else 0)
    rscale = _MIN_SIG_DIGITS - qweight * _NBASE_DIGITS
    rscale = min(max(rscale, _scale(a), _scale(b), 0), _MAX_DISPLAY_SCALE)
    with localcontext() as ctx:
        ctx.prec = 4 * _MAX_DISPLAY_SCALE
        return (a / b).quantize(Decimal(1).scaleb(-rscale), rounding=ROUND_HALF_UP)


def pg_round(d: Decimal, places: int) -> Decimal:
    """PostgreSQL's ``round(numeric, places)``: half away from zero, to exactly ``places`` decimals."""
    with localcontext() as ctx:
        ctx.prec = 4 * _MAX_DISPLAY_SCALE
        return d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _change_percent(current: Decimal, previous: Decimal) -> Decimal | None:
    """``round(100.0 * (current - previous) / nullif(previous, 0), 1)`` in PostgreSQL's numeric."""
    if previous == 0:
        return None
    with localcontext() as ctx:
        ctx.prec = 4 * _MAX_DISPLAY_SCALE
        hundred_times = Decimal("100.0") * (current - previous)
    return pg_round(pg_numeric_div(hundred_times, previous), 1)


# -- SQL literals ----------------------------------------------------------------------------------------


def _number_sql(value: float | int) -> str:
    """A DuckDB literal with the exact value PostgreSQL reads from psycopg2's rendering of ``value``
    (``repr``, read as numeric): positional digits, so DuckDB reads an exact integer or DECIMAL."""
    text = format(Decimal(repr(value)), "f")
    digits = len(text.replace("-", "").replace(".", "").lstrip("0"))
    if digits > 38:
        raise NotEvaluable(f"the number {value!r} has more digits than DuckDB's DECIMAL holds")
    return text


def _date_sql(day: dt.date) -> str:
    return f"DATE '{day.isoformat()}'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _iso_date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _gx_renders(value: str) -> str:
    """``value`` if GX 1.24 can write it into the ``unexpected_index_query`` it computes for every column-map
    expectation, else :class:`NotEvaluable`.

    GX substitutes each bound parameter with ``re.sub(pattern, repr(value), query)``: a value whose
    ``repr`` has a ``\\x``, ``\\u`` or ``\\U`` escape (a ZWNJ, a no-break space, any character Python does
    not print) is a bad escape in the replacement, and GX reports the expectation with an exception (which
    anbar.validation shows as an error). Such an expectation stays with GX, which gives that result.
    """
    try:
        re.sub("x", repr(value), "x")
    except re.error as exc:
        raise NotEvaluable(f"GX cannot render {value!r} into its query ({exc})") from None
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# -- reading kwargs --------------------------------------------------------------------------------------

_KNOWN_CONFIG_KEYS = {"type", "kwargs", "meta", "id", "notes", "description", "severity", "rendered_content"}
# kwargs every expectation type accepts that do not change the result.
_NEUTRAL_KWARGS = {"catch_exceptions"}
_BOUNDS = ("min_value", "max_value", "strict_min", "strict_max")
_ALLOWED_KWARGS: dict[str, set[str]] = {
    NOT_NULL: {"column", "mostly"},
    NULL: {"column", "mostly"},
    IN_SET: {"column", "value_set", "mostly"},
    NOT_IN_SET: {"column", "value_set", "mostly"},
    BETWEEN: {"column", "mostly", *_BOUNDS},
    MATCH_REGEX: {"column", "regex", "mostly"},
    NOT_MATCH_REGEX: {"column", "regex", "mostly"},
    UNIQUE: {"column", "mostly"},
    COMPOUND_UNIQUE: {"column_list", "ignore_row_if", "mostly"},
    A_GREATER_THAN_B: {"column_A", "column_B", "or_equal", "ignore_row_if", "mostly"},
    MEDIAN: {"column", *_BOUNDS},
    MEAN: {"column", *_BOUNDS},
    MIN: {"column", *_BOUNDS},
    MAX: {"column", *_BOUNDS},
    SUM: {"column", *_BOUNDS},
    ROW_COUNT_BETWEEN: set(_BOUNDS),
    ROW_COUNT_EQUAL: {"value"},
    VALID_PERSON_ID: {"column", "mostly"},
    VALID_LEGAL_ENTITY_ID: {"column", "mostly"},
    VALID_CALENDAR_DATE: {"column", "calendar", "mostly"},
    IN_CODE_LIST: {"column", "code_list", "mostly"},
    ROW_COUNT_VS_PREVIOUS: {"tolerance"},
    TOTAL_VS_PREVIOUS: {"column", "aggregate", "tolerance"},
    NO_YOUNGER: {"id_column", "birth_date_column"},
    NOT_ACTIVE_ELSEWHERE: {"id_column", "other_dataset", "other_id_column", "row_condition_sql", "other_condition_sql"},
    ROWS_QUERY: {"unexpected_rows_query"},
}
_PLAIN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")  # anbar.gx_custom._IDENT
_DATASET_KEY = re.compile(r"^[a-z][a-z0-9_]*__[a-z][a-z0-9_]*$")  # anbar.gx_custom.DATASET_KEY


def _relation_role(config: Mapping[str, Any]) -> str:
    """``clean`` or ``raw``: as :func:`anbar.suites.expectation_table`."""
    table = (config.get("meta") or {}).get("table")
    if table in ("clean", "raw"):
        return table
    return "raw" if config.get("type") in RAW_TYPES else "clean"


class _Columns:
    """The columns of the relations an expectation reads, when known (else every check on types passes
    and :func:`evaluate` checks again)."""

    def __init__(self, schema: Schema | None, role: str) -> None:
        self.schema = schema
        self.role = role

    def type_of(self, column: str, role: str | None = None) -> str | None:
        if self.schema is None:
            return None
        role = role or self.role
        columns = self.schema.get(role)
        if columns is None:
            return None  # a context relation that is absent: the expectation is not applicable
        if column not in columns:
            raise NotEvaluable(f"no column {column!r} in the {role} relation")
        return columns[column]

    def require(
        self, column: str, allowed: frozenset[str] | set[str], what: str, role: str | None = None
    ) -> str | None:
        kind = self.type_of(column, role)
        if kind is not None and kind not in allowed:
            raise NotEvaluable(f"{what} on a {kind} column ({column})")
        return kind


def _column_kwarg(kwargs: Mapping[str, Any], key: str = "column") -> str:
    value = kwargs.get(key)
    if not isinstance(value, str) or not value:
        raise NotEvaluable(f"kwargs.{key} is not a column name")
    return value


def _mostly(kwargs: Mapping[str, Any]) -> float | int:
    if "mostly" not in kwargs:
        return 1
    value = kwargs["mostly"]
    if not _is_number(value) or not 0 <= value <= 1:
        raise NotEvaluable(f"mostly {value!r} is not a share from 0 to 1")
    return value


def _flag(kwargs: Mapping[str, Any], key: str) -> bool:
    value = kwargs.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise NotEvaluable(f"kwargs.{key} is not true or false")
    return value


@dataclass(frozen=True)
class _Bounds:
    low: Any
    high: Any
    strict_low: bool
    strict_high: bool

    def holds(self, value: Any) -> bool:
        """GX's ``_validate_metric_value_between`` for a value of the bounds' kind."""
        above = True if self.low is None else (value > self.low if self.strict_low else value >= self.low)
        below = True if self.high is None else (value < self.high if self.strict_high else value <= self.high)
        return bool(above and below)


def _bounds(kwargs: Mapping[str, Any], kind: str | None, *, integers_only: bool = False) -> _Bounds:
    """min_value/max_value as GX's pydantic model reads them: numbers become floats (ints for row counts),
    ``YYYY-MM-DD`` texts become dates (for a DATE column); anything else is refused."""
    values = []
    for key in ("min_value", "max_value"):
        value = kwargs.get(key)
        if value is None:
            values.append(None)
        elif integers_only:
            if not isinstance(value, int) or isinstance(value, bool):
                raise NotEvaluable(f"kwargs.{key} {value!r} is not a whole number")
            values.append(value)
        elif _is_number(value):
            if kind is not None and kind not in INTEGERS:
                raise NotEvaluable(f"a numeric bound on a {kind} column")
            values.append(float(value))
        elif _iso_date(value) is not None:
            if kind is not None and kind != DATE:
                raise NotEvaluable(f"a date bound on a {kind} column")
            values.append(_iso_date(value))
        else:
            raise NotEvaluable(f"kwargs.{key} {value!r} is neither a number nor a YYYY-MM-DD date")
    low, high = values
    if low is not None and high is not None:
        if type(low) is not type(high):
            raise NotEvaluable("min_value and max_value of different kinds")
        if low > high:
            raise NotEvaluable("min_value is greater than max_value")
    return _Bounds(low, high, _flag(kwargs, "strict_min"), _flag(kwargs, "strict_max"))


def _bound_sql(value: Any) -> str:
    return _date_sql(value) if isinstance(value, dt.date) else _number_sql(value)


def _tolerance(kwargs: Mapping[str, Any]) -> Decimal:
    """anbar.gx_custom._tolerance, as the exact numeric PostgreSQL reads from ``repr(float(value))``."""
    value = kwargs.get("tolerance")
    if not _is_number(value) or not 0 <= value <= 10:
        raise NotEvaluable(f"tolerance {value!r} is not a share from 0 to 10 (GX raises)")
    return Decimal(repr(float(value)))


# -- SQL fragments of the context expectations (row_condition_sql, other_condition_sql) -----------------

_FRAGMENT_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<placeholder>\{[a-z_]+\})|(?P<number>[0-9]+(?:\.[0-9]+)?(?![0-9a-z_.]))"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)|(?P<op><>|!=|<=|>=|=|<|>)|(?P<punct>[(),+-]))",
)
_KEYWORDS = {"and", "or", "not", "is", "null", "in", "between", "true", "false", "date", "interval"}
# What a column of each kind may be compared with (a date plus an interval is a timestamp in both).
_COMPARABLE = {
    "text": {"text"},
    "int": {"int", "number"},
    "date": {"date", "timestamp"},
    "timestamp": {"date", "timestamp"},
    "bool": {"bool"},
}
# An interval the reader accepts: a whole number of one calendar unit ('15 years'), whose addition to a date
# both engines do alike (the day of month clamped to the month's end).
_INTERVAL = re.compile(r"^'([0-9]{1,4}) (year|month|day)s?'$")


@dataclass
class _Operand:
    sql: str
    kind: str  # text, int, date, bool (columns and literals of their kind), number (a literal)
    literal: str | None = None  # the literal's text as written, for strings that may be dates


class _FragmentReader:
    """A boolean SQL condition of anbar's suites, written for PostgreSQL, read only where DuckDB gives
    the same answer, and written again for DuckDB, fully parenthesised.

    The language: ``and``, ``or``, ``not``, parentheses, comparisons (``= <> != < <= > >=``), ``is [not]
    null``, ``[not] in (literals)``, ``[not] between``; columns (``b.x`` this delivery, ``o.x`` the other
    dataset), literals (integers, decimals, '...' texts, ``date '...'``, ``true``/``false``,
    ``{period_start}``, ``{period_end}``), a date plus or minus ``interval 'N years|months|days'``,
    ``left(text, n)``, and two parenthesised conditions compared with ``=`` or ``<>``. Each comparison is
    between things of the same kind: texts only for equality, a number with an integer column, a date with
    a date, a date plus an interval or an ISO date text. Anything else (functions, casts, other arithmetic,
    other types, texts in order) is refused: PostgreSQL and DuckDB differ in too many of them (integer
    division, implicit casts, collations).
    """

    def __init__(
        self,
        text: str,
        scopes: list[tuple[str, Mapping[str, str] | None]],
        qualifiers: Mapping[str, int],
        period: Mapping[str, dt.date | None],
    ) -> None:
        self.text = text
        self.scopes = scopes  # innermost first: (alias, column types or None when unknown)
        self.qualifiers = qualifiers  # alias -> index in scopes
        self.period = period
        self.placeholders: list[str] = []
        self.tokens = self._tokenize(text)
        self.i = 0

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        tokens = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _FRAGMENT_TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                raise NotEvaluable(f"SQL fragment {text!r}: cannot read it from {text[pos:]!r}")
            kind = m.lastgroup or ""
            value = m.group(kind)
            if kind == "name" and value.lower() in _KEYWORDS:
                kind, value = "keyword", value.lower()
            tokens.append((kind, value))
            pos = m.end()
        return tokens

    def fail(self, why: str) -> NotEvaluable:
        return NotEvaluable(f"SQL fragment {self.text!r}: {why}")

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("", "")

    def take(self, kind: str, value: str | None = None) -> str:
        k, v = self.peek()
        if k != kind or (value is not None and v != value):
            raise self.fail(f"expected {value or kind}, found {v or 'the end'}")
        self.i += 1
        return v

    def at(self, kind: str, value: str) -> bool:
        return self.peek() == (kind, value)

    def read(self) -> str:
        out = self.disjunction()
        if self.i != len(self.tokens):
            raise self.fail(f"unexpected {self.peek()[1]!r}")
        return out

    def disjunction(self) -> str:
        return self.joined("or", self.conjunction)

    def conjunction(self) -> str:
        return self.joined("and", self.negation)

    def joined(self, keyword: str, operand: Callable[[], str]) -> str:
        parts = [operand()]
        while self.at("keyword", keyword):
            self.i += 1
            parts.append(operand())
        return parts[0] if len(parts) == 1 else "(" + f" {keyword.upper()} ".join(parts) + ")"

    def parenthesised(self) -> str:
        self.take("punct", "(")
        inner = self.disjunction()
        self.take("punct", ")")
        return inner

    def negation(self) -> str:
        if self.at("keyword", "not"):
            self.i += 1
            return f"(NOT {self.negation()})"
        return self.predicate()

    def predicate(self) -> str:
        if self.at("punct", "("):
            inner = self.parenthesised()
            kind, value = self.peek()
            if kind == "op" and value in ("=", "<>", "!="):
                # Two conditions compared: whether they agree (NULL where either is NULL, in both).
                self.i += 1
                return f"({inner} {'=' if value == '=' else '<>'} {self.parenthesised()})"
            return inner
        if self.at("keyword", "true") or self.at("keyword", "false"):
            value = self.take("keyword")
            if self.peek()[0] in ("op",) or self.at("keyword", "is"):
                raise self.fail("a boolean literal compared")
            return value.upper()
        left = self.operand()
        kind, value = self.peek()
        if kind == "op":
            self.i += 1
            right = self.operand()
            self.check_comparable(left, right, ordered=value not in ("=", "<>", "!="))
            op = "<>" if value == "!=" else value
            return f"({left.sql} {op} {right.sql})"
        if self.at("keyword", "is"):
            self.i += 1
            negated = self.at("keyword", "not")
            if negated:
                self.i += 1
            self.take("keyword", "null")
            return f"({left.sql} IS {'NOT ' if negated else ''}NULL)"
        negated = self.at("keyword", "not")
        if negated:
            self.i += 1
        if self.at("keyword", "in"):
            self.i += 1
            self.take("punct", "(")
            items = [self.operand()]
            while self.at("punct", ","):
                self.i += 1
                items.append(self.operand())
            self.take("punct", ")")
            for item in items:
                if item.literal is None and not item.sql.startswith("DATE "):
                    raise self.fail("an IN list of something else than literals")
                self.check_comparable(left, item)
            return f"({left.sql} {'NOT ' if negated else ''}IN ({', '.join(i.sql for i in items)}))"
        if self.at("keyword", "between"):
            self.i += 1
            low = self.operand()
            self.take("keyword", "and")
            high = self.operand()
            self.check_comparable(left, low, ordered=True)
            self.check_comparable(left, high, ordered=True)
            return f"({left.sql} {'NOT ' if negated else ''}BETWEEN {low.sql} AND {high.sql})"
        raise self.fail("a condition that is not a comparison")

    def operand(self) -> _Operand:
        term = self.term()
        if self.at("punct", "+") or self.at("punct", "-"):
            sign = self.take("punct")
            self.take("keyword", "interval")
            text = self.take("string")
            m = _INTERVAL.match(text)
            if m is None or term.kind != "date":
                raise self.fail(f"{sign} interval {text} (only a date plus or minus whole years, months or days)")
            return _Operand(f"({term.sql} {sign} INTERVAL '{int(m.group(1))} {m.group(2)}')", "timestamp")
        return term

    def term(self) -> _Operand:
        kind, value = self.peek()
        if kind == "string":
            self.i += 1
            return _Operand(value, "text", literal=value[1:-1].replace("''", "'"))
        if kind == "number":
            self.i += 1
            if len(value.replace(".", "").lstrip("0")) > 18:
                raise self.fail("a number too long")
            return _Operand(value, "number")
        if kind == "placeholder":
            self.i += 1
            name = value[1:-1]
            if name not in self.period:
                raise self.fail(f"the placeholder {value} (only {{period_start}} and {{period_end}})")
            self.placeholders.append(name)
            day = self.period[name]
            # An unknown period day: not applicable (the evaluation says so before anything runs).
            return _Operand(_date_sql(day) if day is not None else "NULL", "date")
        if kind == "keyword" and value == "date":
            self.i += 1
            text = self.take("string")
            day = _iso_date(text[1:-1])
            if day is None:
                raise self.fail(f"date {text} is not YYYY-MM-DD")
            return _Operand(_date_sql(day), "date")
        if kind == "keyword" and value in ("true", "false"):
            self.i += 1
            return _Operand(value.upper(), "bool", literal=value)
        if kind == "name" and value.lower() == "left" and self.tokens[self.i + 1 : self.i + 2] == [("punct", "(")]:
            # left(text, n): the first n characters (code points) in both.
            self.i += 2
            text = self.operand()
            self.take("punct", ",")
            count = self.take("number")
            self.take("punct", ")")
            if text.kind not in ("text", "unknown") or "." in count:
                raise self.fail("left() of something else than a text and a whole number")
            return _Operand(f"left({text.sql}, {int(count)})", "text")
        if kind == "name":
            self.i += 1
            return self.column(value)
        raise self.fail(f"unexpected {value or 'end'}")

    def column(self, name: str) -> _Operand:
        if "." in name:
            alias, column = name.split(".", 1)
            if alias not in self.qualifiers:
                raise self.fail(f"the qualifier {alias!r}")
            scope = self.scopes[self.qualifiers[alias]]
        else:
            alias, column = None, name
            found = [s for s in self.scopes if s[1] is None or column in s[1]]
            if not found:
                raise self.fail(f"no column {column!r}")
            scope = found[0]  # SQL resolves an unqualified name in the innermost scope that has it
        if not _PLAIN_NAME.match(column):
            raise self.fail(f"the column name {column!r}")
        types = scope[1]
        if types is not None and column not in types:
            raise self.fail(f"no column {column!r} in {scope[0]}")
        kind = _kind(types[column]) if types is not None else "unknown"
        return _Operand(f"{scope[0]}.{_ident(column)}", kind)

    def check_comparable(self, left: _Operand, right: _Operand, *, ordered: bool = False) -> None:
        kinds = {left.kind, right.kind}
        if ordered and kinds & {"text", "unknown"} and not kinds & {"date", "timestamp"}:
            # Texts are ordered by the database's collation in PostgreSQL, by code point in DuckDB.
            raise self.fail("texts compared by order")
        if "unknown" in kinds:
            return
        if "text" in kinds and "date" in kinds:
            text = left if left.kind == "text" else right
            if text.literal is not None and _iso_date(text.literal) is not None:
                return  # '2025-01-01' compared with a date: a date in both
        for column_kind, allowed in _COMPARABLE.items():
            if left.kind == column_kind and right.kind in allowed:
                return
            if right.kind == column_kind and left.kind in allowed:
                return
        raise self.fail(f"a comparison of {left.kind} with {right.kind}")


def _kind(duck_type: str) -> str:
    if duck_type == TEXT:
        return "text"
    if duck_type in INTEGERS:
        return "int"
    if duck_type == DATE:
        return "date"
    if duck_type == "BOOLEAN":
        return "bool"
    return "other"


def _fragment_placeholders(text: str) -> list[str]:
    try:
        return [f[1] for f in Formatter().parse(text) if f[1] is not None]
    except ValueError as exc:
        raise NotEvaluable(f"SQL fragment {text!r}: {exc}") from None


# -- the plan of one expectation ---------------------------------------------------------------------


@dataclass
class _Plan:
    index: int
    config: dict[str, Any]
    kind: str  # map, unique, aggregate, row_count, context_count, context_rows
    role: str  # the relation it reads: clean or raw
    columns: list[str] = field(default_factory=list)  # the domain columns (samples, index list)
    unexpected: str | None = None  # SQL predicate: the row is unexpected
    domain: str | None = None  # SQL predicate: the row is in the domain (pair, multicolumn)
    missing_from: str | None = None  # column whose NULLs are "missing" (column map)
    mostly: float | int = 1
    empty_count_is_none: bool = True  # GX's aggregate-function count gives NULL on an empty table
    index_names: bool = True  # whether GX's result names unexpected_index_column_names
    index_list: bool = True  # whether GX's result has a partial_unexpected_index_list
    success_rule: str = "nonnull"  # nonnull (ColumnMapExpectation), total (null checks), filtered (pair/multi)
    values_as: str = "value"  # value, pair (tuples), dict (multicolumn)
    statistic: str | None = None  # median, mean, min, max, sum
    column_type: str | None = None
    bounds: _Bounds | None = None
    equal_to: int | None = None
    context: dict[str, Any] = field(default_factory=dict)
    # Helper columns the predicate reads, in layers (a layer may read the ones before): name -> SQL.
    derived: list[dict[str, str]] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)  # context placeholders, in the order GX would ask
    lookups: bool = False  # whether the day-spelling tables may be read


def _plan(index: int, config: Mapping[str, Any], schema: Schema | None, relations: Relations | None) -> _Plan:
    """How the pass evaluates this expectation; :class:`NotEvaluable` when it cannot give GX's result."""
    if not isinstance(config, Mapping):
        raise NotEvaluable("the expectation is not an object")
    exp_type = config.get("type")
    if exp_type not in EVALUATED:
        raise NotEvaluable(f"the pass does not evaluate {exp_type}")
    unknown_keys = set(config) - _KNOWN_CONFIG_KEYS
    if unknown_keys:
        raise NotEvaluable(f"unknown keys {sorted(unknown_keys)}")
    kwargs = config.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise NotEvaluable("kwargs is not an object")
    unknown = set(kwargs) - _ALLOWED_KWARGS[exp_type] - _NEUTRAL_KWARGS
    if unknown:
        raise NotEvaluable(f"kwargs the pass does not read exactly: {sorted(unknown)}")
    if any(isinstance(v, Mapping) for v in kwargs.values()):
        raise NotEvaluable("a suite parameter ($PARAMETER) among the kwargs")
    role = _relation_role(config)
    cols = _Columns(schema, role)
    plan = _Plan(index=index, config=dict(config), kind="map", role=role, lookups=bool(relations and relations.lookups))
    if exp_type == ROWS_QUERY:
        return _plan_rows_query(plan, kwargs, cols, relations)
    if exp_type in CONTEXT_TYPES:
        if role != "clean":
            raise NotEvaluable("a context expectation on the raw relation")
        return _plan_context(plan, exp_type, kwargs, cols, relations)
    if exp_type in (ROW_COUNT_BETWEEN, ROW_COUNT_EQUAL):
        plan.kind = "row_count"
        if exp_type == ROW_COUNT_EQUAL:
            value = kwargs.get("value")
            if not isinstance(value, int) or isinstance(value, bool):
                raise NotEvaluable(f"value {value!r} is not a whole number")
            plan.equal_to = value
        else:
            plan.bounds = _bounds(kwargs, None, integers_only=True)
        return plan
    if exp_type in (MEDIAN, MEAN, MIN, MAX, SUM):
        return _plan_statistic(plan, exp_type, kwargs, cols)
    plan.mostly = _mostly(kwargs)
    if exp_type == COMPOUND_UNIQUE:
        return _plan_compound_unique(plan, kwargs, cols)
    if exp_type == A_GREATER_THAN_B:
        return _plan_pair(plan, kwargs, cols)
    column = _column_kwarg(kwargs)
    c = _ident(column)
    plan.columns = [column]
    plan.missing_from = column
    kind = cols.type_of(column)
    if exp_type in (NOT_NULL, NULL):
        plan.unexpected = f"{c} IS NULL" if exp_type == NOT_NULL else f"{c} IS NOT NULL"
        plan.success_rule = "total"
        plan.missing_from = None
        plan.index_names = exp_type == NOT_NULL
        return plan
    if exp_type == UNIQUE:
        plan.kind = "unique"
        plan.empty_count_is_none = False
        return plan
    expected = _expected_condition(plan, exp_type, kwargs, c, column, kind, cols)
    # GX's column-map condition: a NULL is never unexpected, and a NULL verdict is not counted.
    plan.unexpected = f"{c} IS NOT NULL AND NOT ({expected})"
    return plan


def _expected_condition(
    plan: _Plan, exp_type: str, kwargs: Mapping[str, Any], c: str, column: str, kind: str | None, cols: _Columns
) -> str:
    """SQL true for a value the expectation accepts (GX's ``column_condition_partial``)."""
    if exp_type in (IN_SET, NOT_IN_SET):
        return _in_set_condition(exp_type, kwargs, c, column, kind)
    if exp_type == BETWEEN:
        cols.require(column, INTEGERS | {DATE}, "a between check")
        bounds = _bounds(kwargs, kind)
        if bounds.low is None and bounds.high is None:
            raise NotEvaluable("neither min_value nor max_value (GX raises)")
        parts = []
        if bounds.low is not None:
            parts.append(f"{c} {'>' if bounds.strict_low else '>='} {_bound_sql(bounds.low)}")
        if bounds.high is not None:
            parts.append(f"{c} {'<' if bounds.strict_high else '<='} {_bound_sql(bounds.high)}")
        return " AND ".join(parts)
    if exp_type in (MATCH_REGEX, NOT_MATCH_REGEX):
        cols.require(column, {TEXT}, "a regular expression")
        regex = kwargs.get("regex")
        if not isinstance(regex, str):
            raise NotEvaluable("kwargs.regex is not a text")
        _gx_renders(regex)
        match = f"regexp_matches({c}, {literal(pg_regex_to_re2(regex))})"
        return match if exp_type == MATCH_REGEX else f"NOT {match}"
    if exp_type == VALID_PERSON_ID:
        cols.require(column, {TEXT}, "a person ID check")
        return f"anbar_is_valid_person_id({c})"
    if exp_type == VALID_LEGAL_ENTITY_ID:
        cols.require(column, {TEXT}, "a legal-entity ID check")
        return f"anbar_is_valid_legal_entity_id({c})"
    if exp_type == VALID_CALENDAR_DATE:
        cols.require(column, {TEXT}, "a calendar date check")
        calendar = kwargs.get("calendar")
        if calendar not in ("jalali", "gregorian"):
            raise NotEvaluable(f"calendar {calendar!r} (GX raises)")
        return _calendar_date_condition(plan, c, calendar)
    if exp_type == IN_CODE_LIST:
        cols.require(column, {TEXT} | INTEGERS, "a code-list check")
        code_list = kwargs.get("code_list")
        if not isinstance(code_list, str) or not code_list:
            raise NotEvaluable("kwargs.code_list is not a name")
        _gx_renders(code_list)
        return (
            f"CAST({c} AS VARCHAR) IN (SELECT code FROM anbar_code_list_values WHERE code_list = {literal(code_list)})"
        )
    raise NotEvaluable(f"the pass does not evaluate {exp_type}")  # pragma: no cover - EVALUATED says


# An IN list longer than this is a hash join against its values (DuckDB compares a long constant list
# value by value).
_INLINE_IN_LIST = 16


def _in_set_condition(exp_type: str, kwargs: Mapping[str, Any], c: str, column: str, kind: str | None) -> str:
    values = kwargs.get("value_set")
    if not isinstance(values, list) or not values:
        raise NotEvaluable("kwargs.value_set is not a non-empty list")
    present = [v for v in values if v is not None]
    if not present:
        raise NotEvaluable("a value_set of NULL only")
    if all(isinstance(v, str) for v in present) and kind in (TEXT, None):
        items = [literal(_gx_renders(v)) for v in present]
        subject, element_type = c, "VARCHAR"
    elif all(isinstance(v, str) and _iso_date(v) is not None for v in present) and kind == DATE:
        items = [_date_sql(_iso_date(v)) for v in present]  # type: ignore[arg-type]
        subject, element_type = c, "DATE"
    elif all(isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63 for v in present) and (
        kind in INTEGERS or kind is None
    ):
        items = [str(v) for v in present]
        subject, element_type = f"CAST({c} AS BIGINT)", "BIGINT"
    else:
        raise NotEvaluable(f"a value_set whose values are not all of the {kind or 'same'} kind of the column")
    if exp_type == NOT_IN_SET and len(present) != len(values):
        # GX writes NOT IN (..., NULL): never true, so no value is unexpected, as in PostgreSQL.
        items.append("NULL")
    negate = "NOT " if exp_type == NOT_IN_SET else ""
    if len(items) > _INLINE_IN_LIST:
        return f"{subject} {negate}IN (SELECT unnest([{', '.join(items)}]::{element_type}[]))"
    return f"{subject} {negate}IN ({', '.join(items)})"


def _calendar_date_condition(plan: _Plan, c: str, calendar: str) -> str:
    """anbar.gx_custom.valid_calendar_date in DuckDB: blank (after trimming spaces), or a date of the calendar
    once the digits are ASCII by the converter's own forms (the same separator twice), else the same after
    stripping every whitespace.

    For speed: a value spelt as the lookup table of every day spells it (zero-padded, '/' or '-', ASCII,
    Persian or Arabic-Indic digits: what PostgreSQL's condition accepts at once) is found by one hash join;
    only the others are normalised and converted (CASE evaluates a branch only for the rows that reach
    it). The helper texts are columns of inner projections, so a macro's argument, which it copies wherever
    it uses it, is a column. The lookup tables are built only for large deliveries
    (:data:`anbar.engine.read.LOOKUP_ROWS`); without them every value takes the second way.
    """
    known, blank, normal = f"anbar_known{plan.index}", f"anbar_blank{plan.index}", f"anbar_normal{plan.index}"
    lookup = f"{c} IN (SELECT spelling FROM anbar_{calendar}_days)" if plan.lookups else "FALSE"
    plan.derived.append({known: lookup})
    plan.derived.append(
        {
            blank: f"CASE WHEN {known} THEN FALSE ELSE trim({c}, ' ') = '' END",
            normal: f"CASE WHEN {known} THEN NULL ELSE anbar_digits(trim({c}, ' ')) END",
        }
    )
    return (
        f"CASE WHEN {known} OR {blank} THEN TRUE "
        f"WHEN anbar_{calendar}_date({normal}) IS NOT NULL THEN TRUE "
        f"ELSE anbar_{calendar}_date(anbar_strip({normal})) IS NOT NULL END"
    )


def _plan_statistic(plan: _Plan, exp_type: str, kwargs: Mapping[str, Any], cols: _Columns) -> _Plan:
    column = _column_kwarg(kwargs)
    plan.kind = "aggregate"
    plan.columns = [column]
    plan.statistic = {MEDIAN: "median", MEAN: "mean", MIN: "min", MAX: "max", SUM: "sum"}[exp_type]
    allowed = INTEGERS | {DATE} if plan.statistic in ("min", "max") else INTEGERS
    plan.column_type = cols.require(column, allowed, f"a {plan.statistic} check")
    plan.bounds = _bounds(kwargs, plan.column_type)
    return plan


def _plan_compound_unique(plan: _Plan, kwargs: Mapping[str, Any], cols: _Columns) -> _Plan:
    columns = kwargs.get("column_list")
    if (
        not isinstance(columns, list)
        or len(columns) < 2
        or not all(isinstance(x, str) and x for x in columns)
        or len(set(columns)) != len(columns)
    ):
        raise NotEvaluable("column_list is not two or more distinct column names")
    for column in columns:
        cols.type_of(column)
    ignore = kwargs.get("ignore_row_if") or "all_values_are_missing"
    quoted = [_ident(x) for x in columns]
    if ignore == "all_values_are_missing":
        plan.domain = "NOT (" + " AND ".join(f"{q} IS NULL" for q in quoted) + ")"
    elif ignore == "any_value_is_missing":
        plan.domain = "NOT (" + " OR ".join(f"{q} IS NULL" for q in quoted) + ")"
    elif ignore == "never":
        plan.domain = "TRUE"
    else:
        raise NotEvaluable(f"ignore_row_if {ignore!r}")
    plan.kind = "unique"
    plan.columns = list(columns)
    plan.empty_count_is_none = False
    plan.success_rule = "filtered"
    plan.values_as = "dict"
    plan.index_list = False  # GX names no rows of a compound key on SQL
    return plan


def _plan_pair(plan: _Plan, kwargs: Mapping[str, Any], cols: _Columns) -> _Plan:
    a_name, b_name = _column_kwarg(kwargs, "column_A"), _column_kwarg(kwargs, "column_B")
    a_type = cols.require(a_name, INTEGERS | {DATE}, "a pair comparison")
    b_type = cols.require(b_name, INTEGERS | {DATE}, "a pair comparison")
    if a_type is not None and b_type is not None and (a_type in INTEGERS) != (b_type in INTEGERS):
        raise NotEvaluable(f"a pair comparison of {a_type} with {b_type}")
    a, b = _ident(a_name), _ident(b_name)
    ignore = kwargs.get("ignore_row_if") or "both_values_are_missing"
    if ignore == "both_values_are_missing":
        plan.domain = f"NOT ({a} IS NULL AND {b} IS NULL)"
    elif ignore == "either_value_is_missing":
        plan.domain = f"NOT ({a} IS NULL OR {b} IS NULL)"
    elif ignore == "neither":
        plan.domain = "TRUE"
    else:
        raise NotEvaluable(f"ignore_row_if {ignore!r}")
    # GX: A >= B, or both NULL (which only ignore_row_if="neither" lets through), when or_equal.
    expected = f"{a} >= {b} OR ({a} IS NULL AND {b} IS NULL)" if _flag(kwargs, "or_equal") else f"{a} > {b}"
    plan.unexpected = f"({plan.domain}) AND NOT ({expected})"
    plan.columns = [a_name, b_name]
    plan.empty_count_is_none = False
    plan.success_rule = "filtered"
    plan.values_as = "pair"
    return plan


def _plan_context(
    plan: _Plan, exp_type: str, kwargs: Mapping[str, Any], cols: _Columns, relations: Relations | None
) -> _Plan:
    """anbar's context expectations (anbar.gx_custom), read from the same kwargs GX writes their query from."""
    if exp_type == ROW_COUNT_VS_PREVIOUS:
        plan.kind = "context_count"
        plan.context = {"tolerance": _tolerance(kwargs), "statistic": "count"}
        plan.needs = ["previous"]
        return plan
    if exp_type == TOTAL_VS_PREVIOUS:
        column = kwargs.get("column")
        if not isinstance(column, str) or not _PLAIN_NAME.match(column):
            raise NotEvaluable("kwargs.column is not a plain column name (GX raises)")
        aggregate = kwargs.get("aggregate") or "sum"
        if aggregate == "sum":
            allowed = INTEGERS
        elif aggregate == "count_distinct":
            allowed = INTEGERS | {TEXT, DATE}
        else:
            raise NotEvaluable(f"aggregate {aggregate!r} (GX raises)")
        cols.require(column, allowed, f"a {aggregate} total")
        cols.require(column, allowed, f"a {aggregate} total", role="previous")
        plan.kind = "context_count"
        plan.context = {"tolerance": _tolerance(kwargs), "statistic": aggregate, "column": column}
        plan.needs = ["previous"]
        return plan
    plan.kind = "context_rows"
    id_column = kwargs.get("id_column")
    if not isinstance(id_column, str) or not _PLAIN_NAME.match(id_column):
        raise NotEvaluable("kwargs.id_column is not a plain column name (GX raises)")
    id_type = cols.require(id_column, {TEXT} | INTEGERS, "an identifier comparison")
    if exp_type == NO_YOUNGER:
        birth = kwargs.get("birth_date_column") or "birth_date"
        if not isinstance(birth, str) or not _PLAIN_NAME.match(birth):
            raise NotEvaluable("kwargs.birth_date_column is not a plain column name (GX raises)")
        birth_type = cols.require(birth, INTEGERS | {DATE}, "a birth date comparison")
        _same_kind(cols, id_column, id_type, "previous", id_column)
        _same_kind(cols, birth, birth_type, "previous", birth)
        plan.columns = [id_column, birth]
        plan.needs = ["previous"]
        plan.context = {"other": "previous", "other_id": id_column, "birth": birth}
        return plan
    other = kwargs.get("other_dataset")
    if not isinstance(other, str) or not _DATASET_KEY.match(other):
        raise NotEvaluable("kwargs.other_dataset is not a dataset key (GX raises)")
    other_id = kwargs.get("other_id_column") or id_column
    if not isinstance(other_id, str) or not _PLAIN_NAME.match(other_id):
        raise NotEvaluable("kwargs.other_id_column is not a plain column name (GX raises)")
    _same_kind(cols, id_column, id_type, other, other_id)
    schema = cols.schema
    batch_types = schema.get("clean") if schema is not None else None
    other_types = schema.get(other) if schema is not None else None
    period = {
        "period_start": relations.period_start if relations else None,
        "period_end": relations.period_end if relations else None,
    }
    needs = [other]
    conditions = {}
    for key, scopes, qualifiers in (
        ("other_condition_sql", [("o", other_types), ("b", batch_types)], {"o": 0, "b": 1}),
        ("row_condition_sql", [("b", batch_types)], {"b": 0}),
    ):
        text = kwargs.get(key)
        if text is None or text == "":
            continue
        if not isinstance(text, str):
            raise NotEvaluable(f"kwargs.{key} is not SQL text")
        reader = _FragmentReader(_unbrace(text), scopes, qualifiers, period)
        conditions[key] = reader.read()
        needs += [p for p in _fragment_placeholders(text) if p not in needs]
    plan.columns = [id_column]
    plan.needs = needs
    plan.context = {"other": other, "other_id": other_id, **conditions}
    return plan


# GX strips these from the end of a query (UnexpectedRowsExpectation._validate_query).
_QUERY_TAIL = "; \t\r\n\v\f"
_ROWS_QUERY_SHAPE = re.compile(
    r"^\s*select\s+(?P<columns>[a-z0-9_,\s]+?)\s+from\s+\{batch\}\s+where\s+(?P<condition>.+)$",
    re.IGNORECASE | re.DOTALL,
)


def _plan_rows_query(plan: _Plan, kwargs: Mapping[str, Any], cols: _Columns, relations: Relations | None) -> _Plan:
    """An unexpected-rows query of the shape the suites write: ``select <columns> from {batch} where
    <condition>``, the columns plain names including ``_file`` and ``_row_no``, the condition in the
    language of :class:`_FragmentReader` (with ``{period_start}``/``{period_end}`` and ``date ± interval``)."""
    query = kwargs.get("unexpected_rows_query")
    if not isinstance(query, str):
        raise NotEvaluable("kwargs.unexpected_rows_query is not SQL text")
    m = _ROWS_QUERY_SHAPE.match(query.rstrip(_QUERY_TAIL))
    if m is None:
        raise NotEvaluable("a query not of the shape select <columns> from {batch} where <condition>")
    columns = [c.strip() for c in m.group("columns").split(",")]
    if not all(_PLAIN_NAME.match(c) for c in columns) or len(set(columns)) != len(columns):
        raise NotEvaluable(f"selected columns {columns} are not distinct plain names")
    if not {"_file", "_row_no"} <= set(columns):
        raise NotEvaluable("a query that does not name the rows (_file, _row_no)")
    for column in columns:
        cols.type_of(column)
    schema = cols.schema
    period = {
        "period_start": relations.period_start if relations else None,
        "period_end": relations.period_end if relations else None,
    }
    condition = m.group("condition")
    reader = _FragmentReader(_unbrace(condition), [("b", schema.get(plan.role) if schema else None)], {}, period)
    plan.kind = "context_rows"
    plan.columns = columns
    plan.needs = list(dict.fromkeys(_fragment_placeholders(condition)))
    selected = ", ".join(f"b.{_ident(c)}" for c in columns)
    plan.context = {"select": selected, "where": reader.read()}
    return plan


def _unbrace(text: str) -> str:
    """The fragment as read by the tokenizer: placeholders kept, doubled braces refused (no literal braces
    in the language)."""
    if "{{" in text or "}}" in text:
        raise NotEvaluable(f"SQL fragment {text!r}: literal braces")
    return text


def _same_kind(cols: _Columns, column: str, kind: str | None, other_role: str, other_column: str) -> None:
    other_kind = cols.type_of(other_column, other_role)
    if kind is None or other_kind is None:
        return
    if _kind(kind) != _kind(other_kind) or _kind(kind) == "other":
        raise NotEvaluable(f"{column} ({kind}) compared with {other_role}.{other_column} ({other_kind})")


# -- public entry points ------------------------------------------------------------------------------------


def why_not_evaluable(config: Mapping[str, Any], schema: Schema | None = None) -> str | None:
    """Why the pass leaves this expectation to GX on PostgreSQL, or None when it evaluates it.

    ``schema`` (from :func:`relation_schema`) adds the checks on column types; without it the answer is
    about the configuration alone (and :func:`evaluate` checks the types again).
    """
    try:
        _plan(0, config, schema, None)
    except NotEvaluable as exc:
        return str(exc)
    return None


def evaluable(config: Mapping[str, Any], schema: Schema | None = None) -> bool:
    """Whether :func:`evaluate` handles this expectation (type, kwargs and, given ``schema``, column types);
    else GX runs it on PostgreSQL."""
    return why_not_evaluable(config, schema) is None


def relation_schema(con, relations: Relations) -> dict[str, dict[str, str]]:
    """The column types of every relation an evaluation may read, by role (clean, raw, context keys)."""
    out: dict[str, dict[str, str]] = {}
    roles = {"clean": relations.clean, "raw": relations.raw, **relations.context}
    for role, relation in roles.items():
        if relation is None:
            continue
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        out[role] = {row[0]: str(row[1]) for row in described}
    return out


def evaluate(
    con, configs: Sequence[Mapping[str, Any]], relations: Relations, *, sample_size: int = 5
) -> list[Evaluation]:
    """Evaluate the expectations in DuckDB (``con`` from :func:`anbar.engine.duck.connect`), one
    :class:`Evaluation` each, in order. Every config must be :func:`evaluable` for the relations' column
    types; :class:`NotEvaluable` names the first that is not."""
    schema = relation_schema(con, relations)
    plans = []
    for i, config in enumerate(configs):
        try:
            plans.append(_plan(i, config, schema, relations))
        except NotEvaluable as exc:
            raise NotEvaluable(f"expectation {i} ({config.get('type')}): {exc}") from None
    results: dict[int, Evaluation] = {}
    ready = []
    for plan in plans:
        missing = _missing_context(plan, relations)
        if missing is not None:
            results[plan.index] = Evaluation(config=plan.config, success=True, result={}, not_applicable=missing)
        else:
            ready.append(plan)
    scans = _run_scans(con, ready, relations, sample_size)
    for plan in ready:
        results[plan.index] = _EVALUATORS[plan.kind](con, plan, relations, scans, sample_size)
    return [results[i] for i in range(len(plans))]


def _missing_context(plan: _Plan, relations: Relations) -> str | None:
    for name in plan.needs:
        if name in ("period_start", "period_end"):
            if getattr(relations, name) is None:
                return name
        elif relations.context.get(name) is None:
            return name
    return None


# -- the aggregate scans -----------------------------------------------------------------------------------


def _with_derived(relation: str, plans: Sequence[_Plan]) -> str:
    """The relation with the helper columns of ``plans`` (inner projections, each column computed once a row)."""
    depth = max((len(plan.derived) for plan in plans), default=0)
    for level in range(depth):
        columns = {
            name: sql for plan in plans if level < len(plan.derived) for name, sql in plan.derived[level].items()
        }
        relation = "(SELECT *, " + ", ".join(f"{sql} AS {name}" for name, sql in columns.items()) + f" FROM {relation})"
    return relation


# Aggregates whose state holds every value (or every distinct one) and is not spilled to disk.
_HOLISTIC = re.compile(r"^~?(quantile_disc|count\(DISTINCT)", re.IGNORECASE)


def _run_scans(con, plans: list[_Plan], relations: Relations, sample_size: int) -> dict[str, dict[str, Any]]:
    """One aggregate query per relation read (clean, raw, previous): every count and statistic.

    Each row-level verdict is a boolean column of a projection below the aggregate, computed once a row and
    counted by a ``count(*) FILTER``; the samples are fetched afterwards, for the expectations that found
    something (:func:`_sample_rows`).

    Holistic aggregates (a median, a distinct count) keep every value in a state DuckDB cannot spill: each
    runs in a query of its own (:data:`_HOLISTIC`), so a large delivery needs one such state at a time
    within the engine's memory limit, not all of them at once.
    """
    wanted: dict[str, dict[str, str]] = {}
    flags: dict[str, dict[str, str]] = {}
    for plan in plans:
        if plan.kind == "context_rows":
            continue  # a query of its own
        aggs = wanted.setdefault(plan.role, {"n": "count(*)"})
        p = plan.index
        if plan.kind == "map":
            flags.setdefault(plan.role, {})[f"anbar_f{p}"] = plan.unexpected or "FALSE"
            aggs[f"u{p}"] = f"count(*) FILTER (WHERE anbar_f{p})"
        if plan.domain is not None:
            aggs[f"d{p}"] = f"count(*) FILTER (WHERE {plan.domain})"
        if plan.missing_from is not None:
            aggs[f"nn:{plan.missing_from}"] = f"count({_ident(plan.missing_from)})"
        if plan.kind == "aggregate":
            c = _ident(plan.columns[0])
            aggs[f"nn:{plan.columns[0]}"] = f"count({c})"
            stat = plan.statistic
            if stat == "median":
                # The two middle values: quantile_disc gives the lower one, of -x the upper one.
                # ~x (bitwise not, -x-1) reverses the order without overflow, in the column's own type.
                aggs[f"lo{p}"] = f"quantile_disc({c}, 0.5)"
                aggs[f"hi{p}"] = f"~quantile_disc(~{c}, 0.5)"
            elif stat in ("mean", "sum"):
                aggs[f"sum:{plan.columns[0]}"] = f"sum({c})"
            else:
                aggs[f"{stat}{p}"] = f"{stat}({c})"
        if plan.kind == "context_count":
            previous = wanted.setdefault("previous", {"n": "count(*)"})
            if plan.context["statistic"] != "count":
                column = plan.context["column"]
                stat = plan.context["statistic"]
                expr = f"sum({_ident(column)})" if stat == "sum" else f"count(DISTINCT {_ident(column)})"
                aggs[f"{stat}:{column}"] = expr
                previous[f"{stat}:{column}"] = expr
    out: dict[str, dict[str, Any]] = {}
    sources = {"clean": relations.clean, "raw": relations.raw, "previous": relations.context.get("previous")}
    for role, aggs in wanted.items():
        source = _with_derived(sources[role] or "", [p for p in plans if p.role == role])
        if flags.get(role):
            verdicts = ", ".join(f"{sql} AS {name}" for name, sql in flags[role].items())
            source = f"(SELECT *, {verdicts} FROM {source})"
        together = {name: expr for name, expr in aggs.items() if not _HOLISTIC.match(expr)}
        sql = "SELECT " + ", ".join(f"{expr} AS {_ident(name)}" for name, expr in together.items())
        row = con.execute(f"{sql} FROM {source}").fetchall()[0]
        out[role] = dict(zip(list(together), row, strict=True))
        for name, expr in aggs.items():
            if name not in together:
                out[role][name] = con.execute(f"SELECT {expr} FROM {source}").fetchall()[0][0]
    _sample_rows(con, plans, sources, out, sample_size)
    return out


def _sample_rows(con, plans: list[_Plan], sources: Mapping[str, str | None], scans, sample_size: int) -> None:
    """The first ``sample_size`` offending rows (in the relation's order, as PostgreSQL's LIMIT queries read a
    partition) of every column-map expectation that found some, into ``scans`` as ``s<index>``.

    One LIMIT query each, which stops at its last sample: where offending rows are common that is at once.
    (A single query for all of them would have to hand its rows over in batches, and DuckDB fills a batch
    before handing it over: the whole relation, when they are rare.)
    """
    if sample_size <= 0:
        return
    for p in plans:
        if p.kind != "map" or not scans[p.role][f"u{p.index}"]:
            continue
        values = ", ".join(f"{_ident(c)} AS v{k}" for k, c in enumerate(p.columns))
        source = _with_derived(sources[p.role] or "", [p])
        cursor = con.execute(
            f"SELECT _file, _row_no, {values} FROM {source} WHERE {p.unexpected} LIMIT {int(sample_size)}"
        )
        names = [d[0] for d in cursor.description]
        scans[p.role][f"s{p.index}"] = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# -- GX's result formats -------------------------------------------------------------------------------


def _partial_counts(values: list[Any], sample_size: int) -> list[dict[str, Any]] | None:
    """GX's ``partial_unexpected_counts``; None where GX leaves it out (values it cannot sort)."""
    hashable = [tuple(v.values()) if isinstance(v, dict) else v for v in values]
    try:
        return [
            {"value": key, "count": count}
            for key, count in sorted(Counter(hashable).most_common(sample_size), key=lambda x: (-x[1], x[0]))
        ]
    except TypeError:
        return None


def _map_result(
    *,
    element_count: int,
    nonnull_count: int | None,
    unexpected_count: int | None,
    unexpected_list: list[Any],
    unexpected_index_list: list[dict[str, Any]] | None,
    index_names: bool,
    sample_size: int,
) -> dict[str, Any]:
    """GX 1.24's ``_format_map_output`` for result_format SUMMARY (the same arithmetic, the same keys)."""
    skip_missing = nonnull_count is None
    missing_count = None if skip_missing else element_count - nonnull_count
    missing_percent = unexpected_percent_total = unexpected_percent_nonmissing = None
    if unexpected_count is not None and element_count > 0:
        unexpected_percent_total = unexpected_count / element_count * 100
        if not skip_missing and missing_count is not None:
            missing_percent = missing_count / element_count * 100
            if nonnull_count is not None and nonnull_count > 0:
                unexpected_percent_nonmissing = unexpected_count / nonnull_count * 100
        else:
            unexpected_percent_nonmissing = unexpected_percent_total
    result: dict[str, Any] = {
        "element_count": element_count,
        "unexpected_count": unexpected_count,
        "unexpected_percent": unexpected_percent_nonmissing,
        "partial_unexpected_list": unexpected_list[:sample_size],
    }
    if index_names:
        result["unexpected_index_column_names"] = list(INDEX_COLUMNS)
    if not skip_missing:
        result["missing_count"] = missing_count
        result["missing_percent"] = missing_percent
        result["unexpected_percent_total"] = unexpected_percent_total
        result["unexpected_percent_nonmissing"] = unexpected_percent_nonmissing
    if sample_size > 0:
        counts = _partial_counts(unexpected_list, sample_size)
        if counts is not None:
            result["partial_unexpected_counts"] = counts
        if unexpected_index_list is not None:
            result["partial_unexpected_index_list"] = unexpected_index_list[:sample_size]
    return result


def _mostly_success(rows: int, unexpected: int, mostly: float | int) -> bool:
    return (float(rows) - float(unexpected)) / float(rows) >= mostly


def _samples_from_structs(plan: _Plan, structs: list[dict[str, Any]] | None) -> tuple[list[Any], list[dict[str, Any]]]:
    """GX's unexpected values and index list from the sampled rows (``_file``, ``_row_no``, ``v0``...)."""
    values: list[Any] = []
    index_list: list[dict[str, Any]] = []
    for row in structs or []:
        domain = [row[f"v{k}"] for k in range(len(plan.columns))]
        if plan.values_as == "pair":
            values.append(tuple(domain))
        elif plan.values_as == "dict":
            values.append(dict(zip(plan.columns, domain, strict=True)))
        else:
            values.append(domain[0])
        entry: dict[str, Any] = {}
        for name, value in zip([*INDEX_COLUMNS, *plan.columns], [row["_file"], row["_row_no"], *domain], strict=True):
            entry[name] = value
        index_list.append(entry)
    return values, index_list


def _relation(plan: _Plan, relations: Relations) -> str:
    return relations.raw if plan.role == "raw" else relations.clean


def _map_evaluation(
    plan: _Plan,
    element_count: int,
    nonnull_count: int | None,
    unexpected: int | None,
    values,
    index_list,
    sample_size,
    failing_rows,
) -> Evaluation:
    if plan.success_rule == "total":
        success = True if element_count == 0 else (element_count - unexpected) / element_count >= plan.mostly
    elif unexpected is None or element_count == 0 or not nonnull_count:
        success = True  # vacuously, as GX
    else:
        success = _mostly_success(nonnull_count, unexpected, plan.mostly)
    result = _map_result(
        element_count=element_count,
        nonnull_count=nonnull_count,
        unexpected_count=unexpected,
        unexpected_list=values,
        unexpected_index_list=index_list if plan.index_list else None,
        index_names=plan.index_names,
        sample_size=sample_size,
    )
    return Evaluation(config=plan.config, success=success, result=result, failing_rows=failing_rows)


def _evaluate_map(con, plan: _Plan, relations: Relations, scans, sample_size: int) -> Evaluation:
    scan = scans[plan.role]
    n = scan["n"]
    unexpected = scan[f"u{plan.index}"]
    if n == 0 and plan.empty_count_is_none:
        unexpected = None
    if plan.success_rule == "total":
        nonnull = None
    elif plan.domain is not None:
        nonnull = scan[f"d{plan.index}"]
    else:
        nonnull = scan[f"nn:{plan.missing_from}"]
    values, index_list = _samples_from_structs(plan, scan.get(f"s{plan.index}"))
    failing = f"SELECT _file, _row_no FROM {_with_derived(_relation(plan, relations), [plan])} WHERE {plan.unexpected}"
    return _map_evaluation(plan, n, nonnull, unexpected, values, index_list, sample_size, failing)


def _duplicates_sql(plan: _Plan, relation: str) -> str:
    cols = ", ".join(_ident(c) for c in plan.columns)
    present = " AND ".join(f"{_ident(c)} IS NOT NULL" for c in plan.columns)
    return f"SELECT {cols}, count(*) AS anbar_rows FROM {relation} WHERE {present} GROUP BY {cols} HAVING count(*) >= 2"


def _evaluate_unique(con, plan: _Plan, relations: Relations, scans, sample_size: int) -> Evaluation:
    """One GROUP BY per key: a value (a combination) that occurs twice or more makes all its rows
    unexpected; a NULL (a combination with a NULL) never does. GX's compound check joins the counts back
    by equality, so a row with any NULL in the key is never unexpected, whatever ``ignore_row_if``."""
    relation = _relation(plan, relations)
    scan = scans[plan.role]
    n = scan["n"]
    unexpected = con.execute(
        f"SELECT coalesce(sum(anbar_rows), 0) FROM ({_duplicates_sql(plan, relation)})"
    ).fetchall()[0][0]
    unexpected = int(unexpected)
    nonnull = scan[f"d{plan.index}"] if plan.domain is not None else scan[f"nn:{plan.columns[0]}"]
    join = " AND ".join(f"t.{_ident(c)} = d.{_ident(c)}" for c in plan.columns)
    failing = f"SELECT t._file, t._row_no FROM {relation} t SEMI JOIN ({_duplicates_sql(plan, relation)}) d ON {join}"
    values: list[Any] = []
    index_list: list[dict[str, Any]] = []
    if unexpected and sample_size > 0:
        fields = ", ".join(f"t.{_ident(c)} AS v{k}" for k, c in enumerate(plan.columns))
        duplicated_rows = f"FROM {relation} t SEMI JOIN ({_duplicates_sql(plan, relation)}) d ON {join}"
        first = f"ORDER BY t._file, t._row_no LIMIT {int(sample_size)}"
        cursor = con.execute(f"SELECT t._file, t._row_no, {fields} {duplicated_rows} {first}")
        names = [d[0] for d in cursor.description]
        values, index_list = _samples_from_structs(plan, [dict(zip(names, r, strict=True)) for r in cursor.fetchall()])
        if plan.values_as == "value":
            # GX samples the values from a window partitioned by the value: the smallest duplicated values.
            column = _ident(plan.columns[0])
            values = [
                r[0]
                for r in con.execute(
                    f"SELECT t.{column} {duplicated_rows} ORDER BY t.{column} LIMIT {int(sample_size)}"
                ).fetchall()
            ]
    return _map_evaluation(plan, n, nonnull, unexpected, values, index_list, sample_size, failing)


def _evaluate_aggregate(con, plan: _Plan, relations: Relations, scans, sample_size: int) -> Evaluation:
    scan = scans[plan.role]
    column = plan.columns[0]
    p = plan.index
    stat = plan.statistic
    nonnull = scan[f"nn:{column}"]
    value: Any
    if stat == "median":
        # GX on SQL: the one or two middle values of the sorted non-null values; the mean of two as a float.
        if not nonnull:
            value = None
        elif nonnull % 2 == 0:
            value = float(int(scan[f"lo{p}"]) + int(scan[f"hi{p}"])) / 2.0
        else:
            value = int(scan[f"lo{p}"])
    elif stat == "mean":
        total = scan[f"sum:{column}"]
        # avg(1.0 * x): PostgreSQL's numeric average, which GX turns into a float.
        if total is None:
            value = None
        else:
            with localcontext() as ctx:
                ctx.prec = 200
                value = float(pg_numeric_div(Decimal(int(total)).quantize(Decimal("0.1")), Decimal(nonnull)))
    elif stat == "sum":
        total = scan[f"sum:{column}"]
        # sum(integer) is a bigint, sum(bigint) a numeric that GX turns into a float.
        value = None if total is None else (int(total) if plan.column_type == INTEGER else float(Decimal(int(total))))
    else:
        value = scan[f"{stat}{p}"]
    if value is None:
        return Evaluation(config=plan.config, success=False, result={"observed_value": None})
    assert plan.bounds is not None
    return Evaluation(config=plan.config, success=plan.bounds.holds(value), result={"observed_value": value})


def _evaluate_row_count(con, plan: _Plan, relations: Relations, scans, sample_size: int) -> Evaluation:
    n = scans[plan.role]["n"]
    if plan.equal_to is not None:
        success = n == plan.equal_to
    else:
        assert plan.bounds is not None
        success = plan.bounds.holds(n)
    return Evaluation(config=plan.config, success=success, result={"observed_value": n})


def _context_result(rows: list[dict[str, Any]], count: int) -> dict[str, Any]:
    return {"observed_value": count, "details": {"unexpected_rows": rows[:MAX_RESULT_RECORDS]}}


def _evaluate_context_count(con, plan: _Plan, relations: Relations, scans, sample_size: int) -> Evaluation:
    """The row count or a total against the previous period, in PostgreSQL's numeric arithmetic (two
    numbers: the comparison and the percentage are computed here, exactly as the server does)."""
    tol = plan.context["tolerance"]
    stat = plan.context["statistic"]
    cur_scan, prev_scan = scans["clean"], scans["previous"]
    rows: list[dict[str, Any]] = []
    with localcontext() as ctx:
        ctx.prec = 200
        if stat == "count":
            cur, prev = cur_scan["n"], prev_scan["n"]
            if cur > 0 and prev > 0 and abs(cur - prev) > tol * prev:
                change = _change_percent(Decimal(cur), Decimal(prev))
                rows.append({"row_count": cur, "previous_row_count": prev, "change_percent": change})
        else:
            key = f"{stat}:{plan.context['column']}"
            cur_raw, prev_raw = cur_scan[key], prev_scan[key]
            if cur_raw is not None and prev_raw is not None:
                cur_total, prev_total = Decimal(int(cur_raw)), Decimal(int(prev_raw))
                if abs(cur_total - prev_total) > tol * abs(prev_total):
                    change = _change_percent(cur_total, prev_total)
                    rows.append({"total": cur_total, "previous_total": prev_total, "change_percent": change})
    return Evaluation(config=plan.config, success=not rows, result=_context_result(rows, len(rows)))


def _context_rows_sql(plan: _Plan, relations: Relations) -> str:
    """The offending rows of a person check (GX's query, written for DuckDB: the other relation reduced to
    what the comparison needs, then one hash join)."""
    batch = _relation(plan, relations)
    if "select" in plan.context:
        return f"SELECT {plan.context['select']} FROM {batch} b WHERE {plan.context['where']}"
    other = relations.context[plan.context["other"]]
    pid = _ident(plan.columns[0])
    other_id = _ident(plan.context["other_id"])
    if "birth" in plan.context:
        birth = _ident(plan.context["birth"])
        # EXISTS (p.id = b.id AND p.birth < b.birth) is: the earliest birth date of the id before b's.
        return (
            f"SELECT b._file, b._row_no, b.{pid}, b.{birth} FROM {batch} b "
            f"JOIN (SELECT {other_id} AS anbar_id, min({birth}) AS anbar_birth FROM {other} "
            f"WHERE {other_id} IS NOT NULL GROUP BY {other_id}) p ON p.anbar_id = b.{pid} "
            f"WHERE p.anbar_birth < b.{birth}"
        )
    other_condition = plan.context.get("other_condition_sql")
    row_condition = plan.context.get("row_condition_sql")
    where = [f"EXISTS (SELECT 1 FROM {other} o WHERE o.{other_id} = b.{pid}"]
    if other_condition:
        where[0] += f" AND {other_condition}"
    where[0] += ")"
    if row_condition:
        where.append(row_condition)
    return f"SELECT b._file, b._row_no, b.{pid} FROM {batch} b WHERE " + " AND ".join(where)


def _evaluate_context_rows(con, plan: _Plan, relations: Relations, scans, sample_size: int) -> Evaluation:
    """One pass over the offending rows: the first 200 kept (GX's MAX_RESULT_RECORDS), the rest counted by
    record batch."""
    query = _context_rows_sql(plan, relations)
    reader = con.sql(query).to_arrow_reader(65536)
    kept: list[dict[str, Any]] = []
    count = 0
    for batch in reader:
        if len(kept) < MAX_RESULT_RECORDS:
            kept += batch.slice(0, MAX_RESULT_RECORDS - len(kept)).to_pylist()
        count += batch.num_rows
    failing = f"SELECT _file, _row_no FROM ({query})"
    return Evaluation(config=plan.config, success=count == 0, result=_context_result(kept, count), failing_rows=failing)


_EVALUATORS: dict[str, Callable[..., Evaluation]] = {
    "map": _evaluate_map,
    "unique": _evaluate_unique,
    "aggregate": _evaluate_aggregate,
    "row_count": _evaluate_row_count,
    "context_count": _evaluate_context_count,
    "context_rows": _evaluate_context_rows,
}

"""Check digits of Iranian national identifiers (persons and legal entities).

The same rules are written in SQL in ``anbar.sql_functions`` so validation can
run inside PostgreSQL; tests keep the two in agreement.
"""

from __future__ import annotations

from collections.abc import Callable

LEGAL_ENTITY_WEIGHTS = (29, 27, 23, 19, 17)


def person_check_digit(first_nine: str) -> int:
    s = sum(int(d) * (10 - i) for i, d in enumerate(first_nine))
    r = s % 11
    return r if r < 2 else 11 - r


def is_valid_person_id(value: str | None) -> bool:
    """10-digit national ID; shorter all-digit inputs are left-padded with zeros."""
    if value is None:
        return False
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 10:
        return False
    value = value.zfill(10)
    if len(set(value)) == 1:
        return False
    return person_check_digit(value[:9]) == int(value[9])


def legal_entity_check_digit(first_ten: str) -> int:
    d = int(first_ten[9]) + 2
    s = sum((int(c) + d) * LEGAL_ENTITY_WEIGHTS[i % 5] for i, c in enumerate(first_ten))
    r = s % 11
    return 0 if r == 10 else r


def is_valid_legal_entity_id(value: str | None) -> bool:
    """11-digit national ID of a legal entity; digits 3..8 all zero is invalid."""
    if value is None:
        return False
    value = value.strip()
    if len(value) != 11 or not value.isascii() or not value.isdigit():
        return False
    if value[3:9] == "000000":
        return False
    return legal_entity_check_digit(value[:10]) == int(value[10])


def make_person_id(body: int) -> str:
    """A valid national ID from a 9-digit body (for synthetic populations)."""
    first_nine = f"{body % 10**9:09d}"
    candidate = first_nine + str(person_check_digit(first_nine))
    if len(set(candidate)) == 1:  # ten identical digits are invalid by rule
        return make_person_id(body + 1)
    return candidate


def make_legal_entity_id(body: int) -> str:
    """A valid legal-entity ID from a 10-digit body whose digits 3..8 are not all zero."""
    first_ten = f"{body % 10**10:010d}"
    if first_ten[3:9] == "000000":
        first_ten = first_ten[:8] + "1" + first_ten[9]
    return first_ten + str(legal_entity_check_digit(first_ten))


# -- the same sums as SQL (PostgreSQL's anbar.sql_functions and DuckDB's anbar.engine.duck) --------------


def person_sum_sql(digit: Callable[[int], str]) -> str:
    """SQL for the weighted sum of a person ID's first nine digits; ``digit(i)`` is SQL for digit i (0 = leftmost)."""
    return " + ".join(f"{digit(i)} * {10 - i}" for i in range(9))


def legal_entity_sum_sql(digit: Callable[[int], str]) -> str:
    """SQL for the weighted sum of a legal-entity ID's first ten digits (``digit`` as for :func:`person_sum_sql`)."""
    # sum((digit[i] + d) * w[i % 5]) = sum(digit[i] * w[i % 5]) + d * sum(w[i % 5]), d = digit[9] + 2
    weights = [LEGAL_ENTITY_WEIGHTS[i % 5] for i in range(10)]
    terms = [f"{digit(i)} * {w}" for i, w in enumerate(weights)]
    return " + ".join(terms) + f" + ({digit(9)} + 2) * {sum(weights)}"

"""Text representations used by legacy supplier systems (the "conversion" principle).

These go the *other* way from the warehouse's normalisation: they turn clean
values into what a supplier's system actually writes.
"""

from __future__ import annotations

PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"  # U+06F0..U+06F9
ARABIC_INDIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"  # U+0660..U+0669

PERSIAN_YEH = "\u06cc"  # ی
ARABIC_YEH = "\u064a"  # ي
KEHEH = "\u06a9"  # ک (Persian kaf)
ARABIC_KAF = "\u0643"  # ك

_TO_PERSIAN = str.maketrans("0123456789", PERSIAN_DIGITS)
_TO_ARABIC_INDIC = str.maketrans("0123456789", ARABIC_INDIC_DIGITS)
_TO_ASCII = str.maketrans(PERSIAN_DIGITS + ARABIC_INDIC_DIGITS, "0123456789" * 2)

# Arabic letter forms, as written by older (Arabic-locale) systems.
_ARABIC_LETTERS = str.maketrans({PERSIAN_YEH: ARABIC_YEH, KEHEH: ARABIC_KAF})

# windows-1256 has keheh (0x98) but neither Persian yeh U+06CC nor heh with yeh
# U+06C0, and no Persian or Arabic-Indic digits at all.
_CP1256_SAFE = str.maketrans(
    {
        PERSIAN_YEH: ARABIC_YEH,
        "\u06c0": "\u0647",  # ۀ -> ه
        **{p: a for p, a in zip(PERSIAN_DIGITS, "0123456789", strict=True)},
        **{p: a for p, a in zip(ARABIC_INDIC_DIGITS, "0123456789", strict=True)},
    }
)


def persian_digits(value: str) -> str:
    return value.translate(_TO_PERSIAN)


def arabic_indic_digits(value: str) -> str:
    return value.translate(_TO_ARABIC_INDIC)


def ascii_digits(value: str) -> str:
    return value.translate(_TO_ASCII)


def arabic_letters(value: str) -> str:
    """Persian yeh/keheh -> Arabic yeh/kaf."""
    return value.translate(_ARABIC_LETTERS)


def cp1256_safe(value: str) -> str:
    """Replace the characters windows-1256 cannot encode with their legacy forms."""
    return value.translate(_CP1256_SAFE)

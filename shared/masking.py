"""How identity document numbers and phone numbers look where someone may see them without needing them:
staff lists and exports, answers to other services, logs. One rule for every place, so a number masked
in one list is masked the same way in another (and cannot be pieced together from two of them).

- An ID number keeps its first three and last four characters (enough to match it with the document
  in hand); a short one (a passport) its last four, or two.
- A phone number keeps its last four digits; a leading ``+`` stays, so it still reads as a number.
"""

from __future__ import annotations

import re

MASK = "*"
# A run of digits, maybe with spaces or dashes and a final check character X, long enough to be a phone
# or document number (seven digits or more); dates ("2023-11-05") are left as they are.
_NUMBER_IN_TEXT = re.compile(r"\+?\d(?:[\d -]{5,}\d)?[\dXx](?![\dA-Za-z])")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")


def mask_id_number(id_number: str) -> str:
    """``310101199001011234`` -> ``310***********1234``; ``E09000011`` -> ``*****0011``."""
    front = 3 if len(id_number) >= 12 else 0
    back = 4 if len(id_number) >= 8 else 2
    return id_number[:front] + MASK * (len(id_number) - front - back) + id_number[-back:]


def mask_phone(phone: str) -> str:
    """``+8613812345678`` -> ``+*********5678``: every digit but the last four."""
    digits = sum(ch.isdigit() for ch in phone)
    seen = 0
    masked = []
    for ch in phone:
        if ch.isdigit():
            seen += 1
            masked.append(ch if seen > digits - 4 else MASK)
        else:
            masked.append(ch)
    return "".join(masked)


def mask_numbers_in_text(text: str) -> str:
    """Free text (a staff member's note) with every phone- or ID-like number in it masked: a resident ID
    (15 or 18 characters) as an ID number, anything else as a phone."""

    def masked(match: re.Match[str]) -> str:
        number = match.group(0)
        compact = re.sub(r"[ -]", "", number)
        if _DATE.fullmatch(number) or sum(ch.isdigit() for ch in compact) < 7:
            return number
        if not number.startswith("+") and len(compact) in (15, 18) and compact[:-1].isdigit():
            return mask_id_number(compact)
        return mask_phone(number)

    return _NUMBER_IN_TEXT.sub(masked, text)

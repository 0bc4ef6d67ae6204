"""Checks of what buyers type, with well-kept libraries; each refusal names its field and says why
in Chinese and English."""

from __future__ import annotations

import re

import phonenumbers
from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError as StdnumError

from shared.http import ApiError
from shared.types import IdType


def invalid(field: str, code: str, message: str, message_zh: str) -> ApiError:
    return ApiError(422, code, message, message_zh, field=field)


def credit_code(value: str, field: str = "credit_code") -> str:
    """A Unified Social Credit Code, checksum verified; returned in its compact form."""
    try:
        return str(uscc.validate(value))
    except StdnumError as exc:
        raise invalid(
            field,
            "invalid_credit_code",
            f"not a valid Unified Social Credit Code ({exc})",
            "统一社会信用代码无效，请核对后重新填写",
        ) from exc


def division_code(validated_credit_code: str) -> str:
    """Characters 3-8 of a credit code: the administrative division where the unit is registered."""
    return validated_credit_code[2:8]


def id_number(id_type: IdType, value: str, field: str = "id_number") -> str:
    value = value.strip().upper()
    if id_type is IdType.RESIDENT_ID:
        try:
            return str(ric.validate(value))
        except StdnumError as exc:
            raise invalid(
                field,
                "invalid_id_number",
                f"not a valid resident identity card number ({exc})",
                "居民身份证号码无效，请核对后重新填写",
            ) from exc
    pattern, shape_en, shape_zh = DOCUMENT_NUMBERS[id_type]
    if not re.fullmatch(pattern, value):
        raise invalid(
            field,
            "invalid_id_number",
            f"the {id_type.value.replace('_', ' ')} number should be {shape_en}",
            f"证件号码格式有误：{shape_zh}",
        )
    return value


# The shapes of the other documents' numbers (no public checksum to verify).
DOCUMENT_NUMBERS: dict[IdType, tuple[str, str, str]] = {
    IdType.PASSPORT: (r"[A-Z0-9]{5,20}", "5 to 20 letters and digits", "护照号码为5至20位字母或数字"),
    IdType.HK_MACAO_PERMIT: (
        r"[HM]\d{8}(\d{2})?",
        "H or M followed by 8 (or 10) digits",
        "港澳居民来往内地通行证号码为H或M加8位（或10位）数字",
    ),
    IdType.TAIWAN_PERMIT: (
        r"\d{8}(\d{2})?",
        "8 (or 10) digits",
        "台湾居民来往大陆通行证号码为8位（或10位）数字",
    ),
}


def mobile(value: str, field: str = "mobile", region: str = "CN") -> str:
    """A mobile number, returned in E.164; numbers without a country code are read as Chinese."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise invalid(field, "invalid_mobile", "not a phone number", "手机号码格式有误") from exc
    if not phonenumbers.is_valid_number(number) or phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise invalid(field, "invalid_mobile", "not a valid mobile number", "手机号码无效")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

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


# The 31 provincial-level regions of the Chinese mainland, where the courier delivers certificates
# (FAQ VIII: express delivery is limited to the Chinese mainland). Hong Kong, Macao and Taiwan are not
# among them. Keyed by the short name a buyer may type; the full name is what is stored.
MAINLAND_PROVINCES: dict[str, str] = {
    full.removesuffix("维吾尔自治区").removesuffix("壮族自治区").removesuffix("回族自治区")
    .removesuffix("自治区").removesuffix("省").removesuffix("市"): full
    for full in (
        "北京市", "天津市", "河北省", "山西省", "内蒙古自治区", "辽宁省", "吉林省", "黑龙江省", "上海市",
        "江苏省", "浙江省", "安徽省", "福建省", "江西省", "山东省", "河南省", "湖北省", "湖南省", "广东省",
        "广西壮族自治区", "海南省", "重庆市", "四川省", "贵州省", "云南省", "西藏自治区", "陕西省", "甘肃省",
        "青海省", "宁夏回族自治区", "新疆维吾尔自治区",
    )
}  # fmt: skip


def mainland_province(value: str, field: str) -> str:
    """The full name of a Chinese mainland provincial region (its short name is accepted too)."""
    name = value.strip()
    for suffix in ("维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "省", "市"):
        name = name.removesuffix(suffix)
    if name not in MAINLAND_PROVINCES:
        raise invalid(
            field,
            "mainland_only",
            "express delivery is for the Chinese mainland only: give one of its provinces, autonomous "
            "regions or municipalities (e.g. 上海市, 广东省)",
            "快递寄送仅限中国大陆地区，请填写大陆的省、自治区或直辖市（如上海市、广东省）",
        )
    return MAINLAND_PROVINCES[name]

"""What every page calls the domain's codes, (Chinese, English) by vocabulary: one table for the buyer
portal, the staff console and the finance pages. A registration status's words are ``shared/types.py``'s
own (``RegistrationStatus.label_zh`` and ``label_en``, which the APIs and messages use too).

A vocabulary's order is the order its options are offered in a form's select.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.types import (
    Affiliation,
    Decision,
    DeliveryMethod,
    FeeKind,
    IdType,
    OrderStatus,
    PaymentMethod,
    QrChannel,
    RegistrationStatus,
    UnitKind,
    UnitStatus,
)
from shared.web import Lang

Labels = Mapping[str, Mapping[str, tuple[str, str]]]

LABELS: dict[str, dict[str, tuple[str, str]]] = {
    # ---------------------------------------------------------------------------------- accounts, units
    "account_kind": {
        "unit": ("单位账户（为单位及其人员报名）", "Unit account (registers a unit and its people)"),
        "individual": ("个人账户（仅为本人报名）", "Individual account (registers yourself only)"),
    },
    "unit_kind": {
        UnitKind.ENTERPRISE: ("企业", "Enterprise"),
        UnitKind.GOVERNMENT: ("政府机关", "Government body"),
        UnitKind.PUBLIC_INSTITUTION: ("事业单位", "Public institution"),
        UnitKind.SOCIAL_ORGANISATION: ("社会组织", "Social organisation"),
        UnitKind.INDIVIDUAL: ("个人", "Individual"),
    },
    "unit_status": {
        UnitStatus.UNDER_REVIEW: ("交易团审核中", "Under the trade mission's review"),
        UnitStatus.APPROVED: ("审核通过", "Approved"),
        UnitStatus.REJECTED: ("审核未通过", "Not approved"),
    },
    "affiliation": {
        Affiliation.RESIDENCE: ("按住所地（统一社会信用代码）", "By residence (from the credit code)"),
        Affiliation.CENTRAL_ENTERPRISE: ("中央企业", "Central enterprise"),
        Affiliation.NHC: ("国家卫生健康委直属单位", "Institution under the National Health Commission"),
        Affiliation.OVERSEAS: ("境外单位", "Registered outside the Chinese mainland"),
    },
    # ---------------------------------------------------------------------------------- people
    "id_type": {
        IdType.RESIDENT_ID: ("居民身份证", "Resident identity card"),
        IdType.PASSPORT: ("护照", "Passport"),
        IdType.HK_MACAO_PERMIT: (
            "港澳居民来往内地通行证",
            "Mainland travel permit for Hong Kong and Macao residents",
        ),
        IdType.TAIWAN_PERMIT: ("台湾居民来往大陆通行证", "Mainland travel permit for Taiwan residents"),
    },
    "personnel_label": {
        "purchaser": ("采购商", "Purchaser"),
        "manager": ("管理人员", "Manager"),
        "technical staff": ("技术人员", "Technical staff"),
        "government official": ("政府官员", "Government official"),
    },
    "delivery_method": {
        DeliveryMethod.EXPRESS: (
            "快递寄送（仅限中国大陆，免费）",
            "Express delivery (Chinese mainland only, free)",
        ),
        DeliveryMethod.MISSION_COLLECTION: ("交易团统一领取", "Collected by the trade mission"),
        DeliveryMethod.ONSITE_PICKUP: ("现场领取（境外采购商）", "Pick up on site (overseas buyers)"),
    },
    "fee_kind": {
        FeeKind.STANDARD: ("标准", "Standard"),
        FeeKind.REVALIDATION: ("证件延续使用", "Re-validation"),
        FeeKind.PREFERENTIAL_REISSUE: ("优惠补办", "Preferential reissue"),
    },
    "registration_status": {status: (status.label_zh, status.label_en) for status in RegistrationStatus},
    # ---------------------------------------------------------------------------------- reviews, staff
    "decision": {Decision.APPROVE: ("通过", "Approved"), Decision.REJECT: ("不通过", "Not approved")},
    "role": {
        "mission_staff": ("交易团工作人员", "Mission staff"),
        "administrator": ("管理员", "Administrator"),
        "observer": ("观察员", "Observer"),
        "finance": ("财务人员", "Finance"),
        "certificate_office": ("证件办公室", "Certificate office"),
    },
    # ---------------------------------------------------------------------------------- payment
    "method": {
        PaymentMethod.QR: ("扫码支付（银联、微信、支付宝）", "QR code (UnionPay, WeChat Pay, Alipay)"),
        PaymentMethod.B2B: ("企业网银（B2B）", "B2B enterprise online banking"),
        PaymentMethod.TRANSFER: ("银行转账", "Bank transfer"),
    },
    "qr_channel": {
        QrChannel.UNIONPAY: ("银联云闪付", "UnionPay"),
        QrChannel.WECHAT: ("微信支付", "WeChat Pay"),
        QrChannel.ALIPAY: ("支付宝", "Alipay"),
    },
    "order_status": {  # finance's filter offers the transfers to confirm first
        OrderStatus.AWAITING_CONFIRMATION: ("转账待确认", "Transfer awaiting confirmation"),
        OrderStatus.AWAITING_PAYMENT: ("待支付", "Awaiting payment"),
        OrderStatus.PAID: ("已支付", "Paid"),
        OrderStatus.CLOSED: ("已关闭", "Closed"),
    },
    # A transfer's decision, as finance made it.
    "transfer_decision": {
        Decision.APPROVE: ("已确认到账", "Confirmed"),
        Decision.REJECT: ("已退回", "Rejected"),
    },
    "entry": {
        "order_created": ("订单创建", "Order created"),
        "payment": ("支付", "Payment"),
        "transfer": ("银行转账（已确认）", "Bank transfer (confirmed)"),
        "refund": ("退款", "Refund"),
        "invoice": ("发票", "Invoice"),
        "red_letter_invoice": ("红字发票", "Red-letter invoice"),
    },
    "refund_status": {
        "failed": ("失败（将重试）", "Failed (tried again)"),
        "pending": ("处理中", "Pending"),
        "done": ("已退款", "Refunded"),
    },
    "invoice_kind": {
        "regular": ("增值税电子普通发票", "Regular VAT e-invoice"),
        "special": ("增值税电子专用发票", "Special VAT e-invoice"),
    },
}


def pick(pair: tuple[str, str], lang: Lang) -> str:
    return pair[0] if lang == "zh" else pair[1]


def labeller(labels: Labels, lang: Lang) -> Callable[[str, Any], str]:
    """``label(vocabulary, code)`` in ``lang``; an unknown code is shown as it is."""

    def label(vocabulary: str, code: Any) -> str:
        if code is None or code == "":
            return ""
        pair = labels.get(vocabulary, {}).get(str(code))
        return str(code) if pair is None else pick(pair, lang)

    return label


def options(labels: Labels, vocabulary: str, lang: Lang) -> list[tuple[str, str]]:
    """A vocabulary as a select's options, in its order."""
    return [(str(code), pick(pair, lang)) for code, pair in labels[vocabulary].items()]

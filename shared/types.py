"""Vocabulary shared by every service and workflow."""

from __future__ import annotations

from enum import StrEnum


class RegistrationStatus(StrEnum):
    """A person's registration, as the buyer sees it (the FAQ's words where it has them)."""

    SUBMITTED = "submitted"  # unit under the trade mission's review
    UNIT_REJECTED = "unit_rejected"  # the unit may modify and resubmit until registration closes
    UNPAID = "unpaid"  # payment notice sent; the deadline runs
    AWAITING_TRANSFER_CONFIRMATION = "awaiting_transfer_confirmation"  # voucher uploaded
    TO_BE_REVIEWED = "to_be_reviewed"  # paid; personnel review pending
    APPROVED = "approved"
    CERTIFICATE_IN_PRODUCTION = "certificate_in_production"
    CERTIFICATE_ISSUED = "certificate_issued"
    SHIPPED = "shipped"
    AWAITING_COLLECTION = "awaiting_collection"
    ONSITE_PICKUP = "onsite_pickup"
    DELIVERED = "delivered"
    CERTIFICATE_REACTIVATED = "certificate_reactivated"  # re-validation: last edition's card is valid again
    EXPIRED = "expired"  # payment deadline passed unpaid
    REVIEW_FAILED = "review_failed"  # personnel review failed; refund under way
    REFUNDED = "refunded"
    WITHDRAWN = "withdrawn"

    @property
    def label_en(self) -> str:
        return _LABELS[self][1]

    @property
    def label_zh(self) -> str:
        return _LABELS[self][0]


_LABELS: dict[RegistrationStatus, tuple[str, str]] = {
    RegistrationStatus.SUBMITTED: ("单位审核中", "Unit under review"),
    RegistrationStatus.UNIT_REJECTED: ("单位审核未通过", "Unit not approved"),
    RegistrationStatus.UNPAID: ("待缴费", "Unpaid"),
    RegistrationStatus.AWAITING_TRANSFER_CONFIRMATION: ("转账待确认", "Transfer awaiting confirmation"),
    RegistrationStatus.TO_BE_REVIEWED: ("待审核", "To be reviewed"),
    RegistrationStatus.APPROVED: ("审核通过", "Approved"),
    RegistrationStatus.CERTIFICATE_IN_PRODUCTION: ("制证中", "Certificate in production"),
    RegistrationStatus.CERTIFICATE_ISSUED: ("已制证", "Certificate issued"),
    RegistrationStatus.SHIPPED: ("已寄出", "Shipped"),
    RegistrationStatus.AWAITING_COLLECTION: ("待交易团领取", "Awaiting collection by the trade mission"),
    RegistrationStatus.ONSITE_PICKUP: ("现场领取", "To be picked up on site"),
    RegistrationStatus.DELIVERED: ("已送达", "Delivered"),
    RegistrationStatus.CERTIFICATE_REACTIVATED: ("证件已重新激活", "Certificate re-activated"),
    RegistrationStatus.EXPIRED: ("已过缴费期限", "Payment deadline passed"),
    RegistrationStatus.REVIEW_FAILED: ("人员审核未通过", "Personnel review failed"),
    RegistrationStatus.REFUNDED: ("已退款", "Refunded"),
    RegistrationStatus.WITHDRAWN: ("已撤回", "Withdrawn"),
}


class UnitStatus(StrEnum):
    UNDER_REVIEW = "under_review"
    APPROVED = "approved"
    REJECTED = "rejected"


class UnitKind(StrEnum):
    ENTERPRISE = "enterprise"
    GOVERNMENT = "government"
    PUBLIC_INSTITUTION = "public_institution"
    SOCIAL_ORGANISATION = "social_organisation"
    INDIVIDUAL = "individual"


class Affiliation(StrEnum):
    """How a unit chooses its trade mission (FAQ II)."""

    RESIDENCE = "residence"  # by the division code inside the credit code
    CENTRAL_ENTERPRISE = "central_enterprise"
    NHC = "nhc"  # institution under the National Health Commission
    OVERSEAS = "overseas"  # registered abroad: chooses its mission


class MissionKind(StrEnum):
    REGIONAL = "regional"
    CENTRAL_ENTERPRISE = "central_enterprise"
    NHC = "nhc"
    INDUSTRIAL = "industrial"


class IdType(StrEnum):
    RESIDENT_ID = "resident_id"
    PASSPORT = "passport"
    HK_MACAO_PERMIT = "hk_macao_permit"
    TAIWAN_PERMIT = "taiwan_permit"


class PaymentMethod(StrEnum):
    QR = "qr"  # UnionPay, WeChat Pay, Alipay
    B2B = "b2b"
    TRANSFER = "transfer"


class QrChannel(StrEnum):
    UNIONPAY = "unionpay"
    WECHAT = "wechat"
    ALIPAY = "alipay"


class FeeKind(StrEnum):
    STANDARD = "standard"
    REVALIDATION = "revalidation"  # last edition's certificate re-activated
    PREFERENTIAL_REISSUE = "preferential_reissue"  # the edition before last: reissued at a lower rate


class DeliveryMethod(StrEnum):
    EXPRESS = "express"  # Chinese mainland only, free
    MISSION_COLLECTION = "mission_collection"
    ONSITE_PICKUP = "onsite_pickup"  # overseas buyers, told by email


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class OrderStatus(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    AWAITING_CONFIRMATION = "awaiting_confirmation"  # a transfer's voucher is with finance
    PAID = "paid"
    CLOSED = "closed"  # deadline passed unpaid

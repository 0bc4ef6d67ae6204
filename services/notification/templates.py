"""Every buyer-facing message, in Chinese and English: it names the registration, the step and what
to do next. Emails carry both languages; SMS (mainland mobiles) is in Chinese with the key English."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from shared.contracts import Step

BEIJING = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Template:
    zh: str
    en: str


TEMPLATES: dict[Step, Template] = {
    Step.REGISTERED: Template(
        "您的报名（{registration_id}）已提交，等待交易团审核单位信息。",
        "Your registration {registration_id} is submitted; the trade mission will review your unit.",
    ),
    Step.UNIT_APPROVED: Template(
        "缴费通知：您的单位已通过审核，报名（{registration_id}）待缴费，请于北京时间{deadline}前完成缴费。",
        "Payment notice: your unit is approved. Registration {registration_id} is unpaid; "
        "please pay before {deadline} Beijing time.",
    ),
    Step.UNIT_REJECTED: Template(
        "您的单位未通过审核（报名{registration_id}），原因：{reason}。请修改后在报名截止前重新提交。",
        "Your unit was not approved (registration {registration_id}): {reason}. "
        "Please modify and resubmit before registration closes.",
    ),
    Step.UNIT_RESUBMITTED: Template(
        "您的单位信息已重新提交（报名{registration_id}），等待交易团审核。",
        "Your unit was resubmitted (registration {registration_id}) and awaits the mission's review.",
    ),
    Step.PAID: Template(
        "缴费成功（报名{registration_id}，订单{order_no}），状态为待审核，请等待人员审核结果。",
        "Payment received (registration {registration_id}, order {order_no}). "
        "Status: to be reviewed; please wait for the personnel review.",
    ),
    Step.PAYMENT_EXPIRED: Template(
        "报名{registration_id}已超过缴费截止时间，报名失效。逾期到账款项将自动退回。",
        "Registration {registration_id} passed its payment deadline unpaid and has expired. "
        "Money that arrives late is refunded automatically.",
    ),
    Step.REVIEW_PASSED: Template(
        "人员审核通过（报名{registration_id}），证件制作已开始。制证开始后不予退款或换人。",
        "Personnel review passed (registration {registration_id}); your certificate is being made. "
        "From now on no refund or substitution is possible.",
    ),
    Step.REVIEW_FAILED: Template(
        "人员审核未通过（报名{registration_id}），原因：{reason}。费用将原路退回。",
        "Personnel review failed (registration {registration_id}): {reason}. Your payment will be refunded.",
    ),
    Step.REFUNDED: Template(
        "报名{registration_id}的费用已退回（退款单{refund_no}）。",
        "The fee for registration {registration_id} has been refunded (refund {refund_no}).",
    ),
    Step.DISPATCHED: Template(
        "您的证件（{certificate_no}）已发出：{delivery}。",
        "Your certificate {certificate_no} has been dispatched: {delivery_en}.",
    ),
    Step.WITHDRAWN: Template(
        "报名{registration_id}已撤回。",
        "Registration {registration_id} has been withdrawn.",
    ),
}

DELIVERY = {
    "express": (
        "快递寄送，承运商{carrier}，运单号{tracking_no}",
        "sent by express, carrier {carrier}, waybill {tracking_no}",
    ),
    "mission_collection": ("请向所属交易团领取", "collect it from your trade mission"),
    "onsite_pickup": (
        "请凭护照或证件在展馆证件中心现场领取",
        "pick it up on site at the certificate centre with your passport or travel document",
    ),
}


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "—"


def render(step: Step, params: dict[str, str]) -> tuple[str, str, str]:
    """(subject, Chinese text, English text) for a step. Deadlines are shown in Beijing time."""
    values = _Blank(params)
    if "deadline" in params:
        deadline = datetime.fromisoformat(params["deadline"]).astimezone(BEIJING)
        values["deadline"] = f"{deadline:%Y-%m-%d %H:%M}"
    method = params.get("delivery_method")
    if method in DELIVERY:
        zh, en = DELIVERY[method]
        values["delivery"], values["delivery_en"] = zh.format_map(values), en.format_map(values)
    template = TEMPLATES[step]
    zh_text, en_text = template.zh.format_map(values), template.en.format_map(values)
    subject = f"进博会采购商报名 CIIE buyer registration {params.get('registration_id', '')}: {step.value.replace('_', ' ')}"
    return subject, zh_text, en_text

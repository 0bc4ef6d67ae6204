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
        "缴费通知：您的单位已通过审核，报名（{registration_id}）待缴费。扫码支付及B2B网关支付请于北京时间{deadline}前完成，"
        "银行转账及上传汇款凭证请于北京时间{transfer_deadline}前完成，逾期未缴费报名失效。",
        "Payment notice: your unit is approved. Registration {registration_id} is unpaid. Pay by QR code or "
        "B2B gateway before {deadline} Beijing time, or by bank transfer with the upload of its voucher before "
        "{transfer_deadline} Beijing time; unpaid after that, the registration expires.",
    ),
    Step.UNIT_REJECTED: Template(
        "您的单位未通过审核（报名{registration_id}），原因：{reason}。请修改后在报名截止前重新提交。",
        "Your unit was not approved (registration {registration_id}): {reason}. "
        "Please modify and resubmit before registration closes.",
    ),
    Step.UNIT_RESUBMITTED: Template(
        "您的单位信息已重新提交（报名{registration_id}），等待交易团审核，审核通过后将发送缴费通知。",
        "Your unit was resubmitted (registration {registration_id}) and awaits the mission's review; "
        "a payment notice follows its approval.",
    ),
    Step.UNIT_CHANGED: Template(
        "您的单位信息已修改（报名{registration_id}），需重新经交易团审核。审核通过前暂停缴费，"
        "审核通过后将重新发送缴费通知。",
        "Your unit's data were changed (registration {registration_id}), so the trade mission reviews the unit "
        "again. Payment waits until it is approved; a new payment notice will follow.",
    ),
    Step.DEADLINE_EXTENDED: Template(
        "缴费截止时间已延长（报名{registration_id}）：扫码支付及B2B网关支付延长至北京时间{deadline}，"
        "银行转账及上传汇款凭证延长至北京时间{transfer_deadline}。请在截止前完成缴费。",
        "The payment deadlines are extended (registration {registration_id}): QR code and B2B payment until "
        "{deadline} Beijing time, bank transfer and the upload of its voucher until {transfer_deadline} "
        "Beijing time. Please pay before they close.",
    ),
    Step.VOUCHER_UPLOADED: Template(
        "已收到您的汇款凭证（报名{registration_id}，订单{order_no}），等待财务确认到账。"
        "确认后状态将变为待审核，期间请勿重复缴费。",
        "We received the remittance voucher for registration {registration_id} (order {order_no}); finance "
        'will confirm the transfer, and the status then becomes "to be reviewed". Please do not pay again '
        "meanwhile.",
    ),
    Step.TRANSFER_REJECTED: Template(
        "您的汇款凭证未通过财务确认（报名{registration_id}，订单{order_no}），原因：{reason}。报名恢复为待缴费，"
        "请于北京时间{deadline}前扫码或通过B2B网关支付，或于北京时间{transfer_deadline}前重新转账并上传汇款凭证，"
        "逾期未缴费报名失效。",
        "Finance did not confirm your bank transfer (registration {registration_id}, order {order_no}): "
        "{reason}. The registration is unpaid again: pay by QR code or B2B gateway before {deadline} Beijing "
        "time, or transfer again and upload its voucher before {transfer_deadline} Beijing time; unpaid after "
        "that, the registration expires.",
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
    Step.PERSON_CHANGED: Template(
        "您的个人信息已修改（报名{registration_id}）。已缴费的，修改后的信息将重新进行人员审核，请等待审核结果；"
        "未缴费的，请按缴费通知缴费。",
        "Your personal data for registration {registration_id} were changed. If you have paid, the personnel "
        "review checks the new data: please wait for its result; if not, please pay as the payment notice says.",
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
    Step.CERTIFICATE_REACTIVATED: Template(
        "证件延续使用已办理（报名{registration_id}）：您上一届的证件{certificate_no}已重新激活，本届展会有效。"
        "本届不再制作或寄送新证件，请妥善保管原证件，勿遗失或损坏，凭原证件入场。",
        "Certificate re-validation done (registration {registration_id}): your certificate {certificate_no} "
        "from the previous CIIE is re-activated and valid for this edition. No new card is made or sent: "
        "keep the old card safe and undamaged, and enter with it.",
    ),
    Step.DISPATCHED: Template(
        "您的证件（{certificate_no}，报名{registration_id}）已发出：{delivery}。",
        "Your certificate {certificate_no} (registration {registration_id}) has been dispatched: {delivery_en}.",
    ),
    Step.WITHDRAWN: Template(
        "报名{registration_id}已撤回。已缴费的，费用将原路退回，退款完成后另行通知。",
        "Registration {registration_id} has been withdrawn. If you had paid, the fee is refunded to where it "
        "came from; you will be told when it is done.",
    ),
}

# A step's other wording, chosen by its params (see ``_template``).
SUBSTITUTED = Template(
    "报名{registration_id}已更换参会人员：新人员替换原报名人员，原人员的报名不再有效。新人员的信息须经人员审核；"
    "已缴费的请等待审核结果，未缴费的请按缴费通知缴费。",
    "Another person has taken the place in registration {registration_id}; the person replaced is no longer "
    "registered. The new person's data go through the personnel review: if paid, please wait for its result; "
    "if not, please pay as the payment notice says.",
)
# A payment notice of a registration that has no separate transfer deadline to tell.
PAYMENT_NOTICE_ONE_DEADLINE = Template(
    "缴费通知：您的单位已通过审核，报名（{registration_id}）待缴费，请于北京时间{deadline}前完成缴费。",
    "Payment notice: your unit is approved. Registration {registration_id} is unpaid; "
    "please pay before {deadline} Beijing time.",
)
INVOICE_VOIDED = Template(
    "原发票{invoice_voided}已开具红字发票冲销。",
    " Invoice {invoice_voided} has been reversed by a red-letter invoice.",
)
INVOICE_REISSUED = Template(
    "已按仍已缴的费用重新开具发票{invoice_issued}。",
    " Invoice {invoice_issued} was issued for what remains paid.",
)
INVOICE_REAPPLY = Template(
    "如需发票，请登录系统重新申请。", " If you need an invoice, please apply for one again."
)

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


def _beijing(instant: str) -> str:
    return f"{datetime.fromisoformat(instant).astimezone(BEIJING):%Y-%m-%d %H:%M}"


def _template(step: Step, params: dict[str, str]) -> Template:
    if step is Step.PERSON_CHANGED and params.get("substitution") == "true":
        return SUBSTITUTED
    if step is Step.UNIT_APPROVED and "transfer_deadline" not in params:
        return PAYMENT_NOTICE_ONE_DEADLINE
    template = TEMPLATES[step]
    if step is Step.REFUNDED and "invoice_voided" in params:
        # FAQ XI: the invoice of a partly refunded order is reversed and one issued for what remains paid.
        extra = INVOICE_REISSUED if "invoice_issued" in params else INVOICE_REAPPLY
        return Template(
            template.zh + INVOICE_VOIDED.zh + extra.zh, template.en + INVOICE_VOIDED.en + extra.en
        )
    return template


def render(step: Step, params: dict[str, str]) -> tuple[str, str, str]:
    """(subject, Chinese text, English text) for a step. Deadlines are shown in Beijing time."""
    values = _Blank(params)
    for name in ("deadline", "transfer_deadline"):
        if name in params:
            values[name] = _beijing(params[name])
    method = params.get("delivery_method")
    if method in DELIVERY:
        zh, en = DELIVERY[method]
        values["delivery"], values["delivery_en"] = zh.format_map(values), en.format_map(values)
    template = _template(step, params)
    zh_text, en_text = template.zh.format_map(values), template.en.format_map(values)
    subject = f"进博会采购商报名 CIIE buyer registration {params.get('registration_id', '')}: {step.value.replace('_', ' ')}"
    return subject, zh_text, en_text


# ------------------------------------------------------------------------------------------ account messages

# Messages about a buyer's account rather than a registration, sent on request of the registration
# service (POST /internal/messages). The SMS carries both languages: a mainland mobile may belong to a
# foreign buyer.
ACCOUNT_SUBJECTS: dict[str, str] = {
    "password_reset": "进博会采购商账户密码重置 CIIE buyer account: password reset",
}
ACCOUNT_TEMPLATES: dict[str, Template] = {
    "password_reset": Template(
        "您正在重置进博会采购商账户密码，验证码为{code}，{minutes}分钟内有效。请勿将验证码告诉他人；如非本人操作，请忽略本消息。",
        "Your CIIE buyer account password reset code is {code}, valid for {minutes} minutes. Do not share "
        "it with anyone; if you did not ask for it, ignore this message.",
    ),
}


def render_account_message(template: str, params: dict[str, str]) -> tuple[str, str, str]:
    """(subject, Chinese text, English text) of an account message."""
    values = _Blank(params)
    text = ACCOUNT_TEMPLATES[template]
    return ACCOUNT_SUBJECTS[template], text.zh.format_map(values), text.en.format_map(values)

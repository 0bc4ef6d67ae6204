"""Every buyer-facing message, in Chinese and English: it names the registration, the step and what
to do next. Emails carry both languages; SMS (mainland mobiles) is in Chinese, and points to the email
where the email says more (the on-site pickup instructions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from shared.catalogue import Edition
from shared.contracts import Step
from shared.types import DeliveryMethod

BEIJING = ZoneInfo("Asia/Shanghai")
SIGNATURE = "— 中国国际进口博览局 CIIE Bureau"  # the end of every email

Channel = Literal["sms", "email"]


@dataclass(frozen=True)
class Template:
    zh: str
    en: str


TEMPLATES: dict[Step, Template] = {
    Step.REGISTERED: Template(
        "您的报名（{registration_id}）已提交，等待交易团审核单位信息，审核结果将通过短信或邮件通知您。",
        "Your registration {registration_id} is submitted; the trade mission will review your unit. "
        "Please wait for its result, which you will receive by SMS or email.",
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
        "报名{registration_id}已超过缴费截止时间，报名失效，无需其他操作。逾期到账款项将自动原路退回。",
        "Registration {registration_id} passed its payment deadline unpaid and has expired; nothing more is "
        "to be done. Money that arrives late is refunded automatically to where it came from.",
    ),
    Step.PERSON_CHANGED: Template(
        "您的个人信息已修改（报名{registration_id}）。已缴费的，修改后的信息将重新进行人员审核，请等待审核结果；"
        "未缴费的，请按缴费通知缴费。",
        "Your personal data for registration {registration_id} were changed. If you have paid, the personnel "
        "review checks the new data: please wait for its result; if not, please pay as the payment notice says.",
    ),
    Step.REVIEW_PASSED: Template(
        "人员审核通过（报名{registration_id}），证件制作已开始。制证开始后不予退款或换人。"
        "证件制作完成后将按您选择的领取方式发放，届时另行通知。",
        "Personnel review passed (registration {registration_id}); your certificate is being made. "
        "From now on no refund or substitution is possible. You will be told when the certificate is sent "
        "or ready to collect, as you chose.",
    ),
    Step.REVIEW_FAILED: Template(
        "人员审核未通过（报名{registration_id}），原因：{reason}。费用将原路退回，退款完成后另行通知。",
        "Personnel review failed (registration {registration_id}): {reason}. Your payment will be refunded "
        "to where it came from; you will be told when it is done.",
    ),
    Step.REFUNDED: Template(
        "报名{registration_id}的费用已原路退回（退款单{refund_no}），无需其他操作，到账时间以银行或支付机构为准。",
        "The fee for registration {registration_id} has been refunded to where it came from (refund "
        "{refund_no}); nothing more is to be done, and when it arrives depends on your bank or payment "
        "provider.",
    ),
    Step.CERTIFICATE_REACTIVATED: Template(
        "证件延续使用已办理（报名{registration_id}）：您上一届的证件{certificate_no}已重新激活，本届展会有效。"
        "本届不再制作或寄送新证件，请妥善保管原证件，勿遗失或损坏，凭原证件入场。",
        "Certificate re-validation done (registration {registration_id}): your certificate {certificate_no} "
        "from the previous CIIE is re-activated and valid for this edition. No new card is made or sent: "
        "keep the old card safe and undamaged, and enter with it.",
    ),
    Step.DISPATCHED: Template(
        "您的证件（{certificate_no}，报名{registration_id}）已发出，请按您选择的领取方式接收。",
        "Your certificate {certificate_no} (registration {registration_id}) has been dispatched; please "
        "receive it as you chose.",
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


# The dispatch message by delivery method (FAQ VIII): the express waybill, the mission's collection, or
# the on-site pickup instructions. The on-site ones are long: the SMS points to the email instead.
DISPATCH: dict[DeliveryMethod, Template] = {
    DeliveryMethod.EXPRESS: Template(
        "您的证件（{certificate_no}，报名{registration_id}）已快递寄出：承运商{carrier}，运单号{tracking_no}。"
        "请在本报名的证件页面查看物流进度，并留意签收。",
        "Your certificate {certificate_no} (registration {registration_id}) has been sent by express: "
        "carrier {carrier}, waybill {tracking_no}. Follow it on the certificate page of your registration "
        "and look out for its delivery.",
    ),
    DeliveryMethod.MISSION_COLLECTION: Template(
        "您的证件（{certificate_no}，报名{registration_id}）已制作完成，交由所属交易团统一发放。"
        "请向您所属的交易团领取证件。",
        "Your certificate {certificate_no} (registration {registration_id}) is made and has gone to your "
        "trade mission, which hands it out. Please collect it from your trade mission.",
    ),
    DeliveryMethod.ONSITE_PICKUP: Template(
        "您的证件（{certificate_no}，报名{registration_id}）已制作完成，请到展会现场领取。\n"
        "领取地点：{pickup_place_zh}，{pickup_address_zh}\n"
        "领取时间：{pickup_hours_zh}\n"
        "请携带：报名时所用的护照或其他旅行证件原件，以及报名号{registration_id}。",
        "Your certificate {certificate_no} (registration {registration_id}) is made: please pick it up on "
        "site.\n"
        "Where: {pickup_place_en}, {pickup_address_en}\n"
        "When: {pickup_hours_en}\n"
        "Bring: the original passport or other travel document you registered with, and your registration "
        "number {registration_id}.",
    ),
}
ONSITE_PICKUP_SMS = (
    "您的证件（{certificate_no}，报名{registration_id}）已制作完成，请到展会现场领取。"
    "领取地点、时间及须携带的材料已发送至您的邮箱，请查收。"
)

# What each step is called in the subject (Chinese, English); a step's other wording has its own.
TITLES: dict[Step, tuple[str, str]] = {
    Step.REGISTERED: ("报名已提交", "registration submitted"),
    Step.UNIT_APPROVED: ("单位审核通过，缴费通知", "unit approved, payment notice"),
    Step.UNIT_REJECTED: ("单位审核未通过", "unit not approved"),
    Step.UNIT_RESUBMITTED: ("单位信息已重新提交", "unit resubmitted"),
    Step.UNIT_CHANGED: ("单位信息已修改，重新审核", "unit changed, reviewed again"),
    Step.DEADLINE_EXTENDED: ("缴费截止时间延长", "payment deadlines extended"),
    Step.VOUCHER_UPLOADED: ("已收到汇款凭证", "remittance voucher received"),
    Step.TRANSFER_REJECTED: ("汇款凭证未通过确认", "bank transfer not confirmed"),
    Step.PAID: ("缴费成功", "payment received"),
    Step.PAYMENT_EXPIRED: ("报名已失效", "registration expired"),
    Step.PERSON_CHANGED: ("个人信息已修改", "personal data changed"),
    Step.REVIEW_PASSED: ("人员审核通过", "personnel review passed"),
    Step.REVIEW_FAILED: ("人员审核未通过", "personnel review failed"),
    Step.REFUNDED: ("费用已退回", "fee refunded"),
    Step.CERTIFICATE_REACTIVATED: ("证件延续使用", "certificate re-validated"),
    Step.DISPATCHED: ("证件已发出", "certificate dispatched"),
    Step.WITHDRAWN: ("报名已撤回", "registration withdrawn"),
}
SUBSTITUTED_TITLE = ("已更换参会人员", "person substituted")
DISPATCH_TITLES: dict[DeliveryMethod, tuple[str, str]] = {
    DeliveryMethod.EXPRESS: ("证件已快递寄出", "certificate dispatched by express"),
    DeliveryMethod.MISSION_COLLECTION: ("证件已交交易团发放", "certificate dispatched to your trade mission"),
    DeliveryMethod.ONSITE_PICKUP: ("证件可现场领取", "certificate dispatched for on-site pickup"),
}


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "—"


def _beijing(instant: str) -> str:
    return f"{datetime.fromisoformat(instant).astimezone(BEIJING):%Y-%m-%d %H:%M}"


def _delivery(params: dict[str, str]) -> DeliveryMethod | None:
    try:
        return DeliveryMethod(params.get("delivery_method", ""))
    except ValueError:
        return None


def _template(step: Step, params: dict[str, str]) -> Template:
    if step is Step.PERSON_CHANGED and params.get("substitution") == "true":
        return SUBSTITUTED
    if step is Step.UNIT_APPROVED and "transfer_deadline" not in params:
        return PAYMENT_NOTICE_ONE_DEADLINE
    if step is Step.DISPATCHED and (method := _delivery(params)) is not None:
        return DISPATCH[method]
    template = TEMPLATES[step]
    if step is Step.REFUNDED and "invoice_voided" in params:
        # FAQ XI: the invoice of a partly refunded order is reversed and one issued for what remains paid.
        extra = INVOICE_REISSUED if "invoice_issued" in params else INVOICE_REAPPLY
        return Template(
            template.zh + INVOICE_VOIDED.zh + extra.zh, template.en + INVOICE_VOIDED.en + extra.en
        )
    return template


def _title(step: Step, params: dict[str, str]) -> tuple[str, str]:
    if step is Step.PERSON_CHANGED and params.get("substitution") == "true":
        return SUBSTITUTED_TITLE
    if step is Step.DISPATCHED and (method := _delivery(params)) is not None:
        return DISPATCH_TITLES[method]
    return TITLES.get(step, (step.value, step.value.replace("_", " ")))


def render(step: Step, params: dict[str, str], *, channel: Channel = "email") -> tuple[str, str, str]:
    """(subject, Chinese text, English text) of a step's message. Deadlines are shown in Beijing time.
    For the SMS channel the on-site pickup text is the short one that points to the email."""
    values = _Blank(params)
    for name in ("deadline", "transfer_deadline"):
        if name in params:
            values[name] = _beijing(params[name])
    template = _template(step, params)
    if channel == "sms" and template is DISPATCH[DeliveryMethod.ONSITE_PICKUP]:
        template = Template(ONSITE_PICKUP_SMS, template.en)
    zh_text, en_text = template.zh.format_map(values), template.en.format_map(values)
    registration_id = params.get("registration_id", "")
    title_zh, title_en = _title(step, params)
    subject = f"进博会采购商报名{registration_id}：{title_zh} | CIIE buyer registration {registration_id}: {title_en}"
    return subject, zh_text, en_text


# ------------------------------------------------------------------------------------------ on-site pickup

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _day_zh(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _day_en(day: date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _clock(at: time) -> str:
    return f"{at:%H:%M}"


def pickup_params(edition: Edition) -> dict[str, str]:
    """The on-site pickup's place, address and opening days and hours, as the messages show them (from
    the edition file: the organiser's to set, and shifted with a rehearsal's calendar)."""
    pickup = edition.onsite_pickup
    hours = f"{_clock(pickup.opens)}–{_clock(pickup.closes)}"
    return {
        "pickup_place_zh": pickup.place_zh,
        "pickup_place_en": pickup.place_en,
        "pickup_address_zh": pickup.address_zh,
        "pickup_address_en": pickup.address_en,
        "pickup_hours_zh": f"{_day_zh(pickup.first_day)}至{_day_zh(pickup.last_day)}，每日{hours}（北京时间）",
        "pickup_hours_en": f"{_day_en(pickup.first_day)} to {_day_en(pickup.last_day)}, daily {hours} "
        "Beijing time",
    }


# ------------------------------------------------------------------------------------------ account messages

# Messages about a buyer's account or card rather than a registration step, sent on request of another
# service (POST /internal/messages). The SMS carries both languages: a mainland mobile may belong to a
# foreign buyer.
AccountTemplate = Literal["password_reset", "certificate_reissued"]

ACCOUNT_SUBJECTS: dict[AccountTemplate, str] = {
    "password_reset": "进博会采购商账户密码重置 CIIE buyer account: password reset",
    "certificate_reissued": "进博会证件补办{certificate_no}（报名{registration_id}） | "
    "CIIE certificate {certificate_no} reissued (registration {registration_id})",
}
ACCOUNT_TEMPLATES: dict[AccountTemplate, Template] = {
    "password_reset": Template(
        "您正在重置进博会采购商账户密码，验证码为{code}，{minutes}分钟内有效。请勿将验证码告诉他人；如非本人操作，请忽略本消息。",
        "Your CIIE buyer account password reset code is {code}, valid for {minutes} minutes. Do not share "
        "it with anyone; if you did not ask for it, ignore this message.",
    ),
    # A lost or damaged card reissued by the certificate office: the card keeps its number, the serial
    # goes up, and the gates refuse every QR code of an earlier serial.
    "certificate_reissued": Template(
        "您的证件{certificate_no}（报名{registration_id}）已补办，新证件序号为{serial}。原证件及其二维码已作废，"
        "不能再用于入场，找回后也请勿使用。请携带报名时所用的身份证件原件，到{pickup_place_zh}"
        "（{pickup_address_zh}）领取新证件，开放时间：{pickup_hours_zh}。",
        "Your certificate {certificate_no} (registration {registration_id}) has been reissued as card serial "
        "{serial}. The old card and its QR code no longer admit you: do not use it even if you find it. "
        "Collect the new card at the {pickup_place_en} ({pickup_address_en}), open {pickup_hours_en}, with "
        "the original identity document you registered with.",
    ),
}


def render_account_message(template: AccountTemplate, params: dict[str, str]) -> tuple[str, str, str]:
    """(subject, Chinese text, English text) of an account message."""
    values = _Blank(params)
    text = ACCOUNT_TEMPLATES[template]
    subject = ACCOUNT_SUBJECTS[template].format_map(values)
    return subject, text.zh.format_map(values), text.en.format_map(values)

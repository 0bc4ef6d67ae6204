"""What the buyer is told about where a registration stands: the label, what to do next, the deadline."""

from __future__ import annotations

from shared.types import RegistrationStatus as S

NEXT_ACTION: dict[S, tuple[str, str]] = {
    S.SUBMITTED: ("等待交易团审核单位信息", "Wait for the trade mission to review your unit"),
    S.UNIT_REJECTED: (
        "请根据退回原因修改单位信息后重新提交（报名截止前）",
        "Modify the unit's data as the reason says and resubmit before registration closes",
    ),
    S.UNPAID: ("请在缴费截止时间前完成缴费", "Pay before the payment deadline"),
    S.AWAITING_TRANSFER_CONFIRMATION: (
        "等待财务确认转账凭证",
        "Wait for finance to confirm your remittance voucher",
    ),
    S.TO_BE_REVIEWED: ("缴费成功，请等待人员审核结果", "Paid: wait for the personnel review result"),
    S.APPROVED: ("审核通过，证件制作中", "Approved: your certificate is being made"),
    S.CERTIFICATE_IN_PRODUCTION: ("证件制作中", "Your certificate is being made"),
    S.CERTIFICATE_ISSUED: ("证件已制作，等待寄送或领取", "Certificate made: waiting to be sent or collected"),
    S.SHIPPED: ("证件已寄出，可查看快递信息", "Certificate sent: follow the express tracking"),
    S.AWAITING_COLLECTION: ("请向所属交易团领取证件", "Collect your certificate from your trade mission"),
    S.ONSITE_PICKUP: ("请按邮件说明现场领取证件", "Pick up your certificate on site as the email explains"),
    S.DELIVERED: (
        "证件已送达，无需其他操作，请凭证件入场",
        "Certificate delivered: nothing more to do, enter with it",
    ),
    S.CERTIFICATE_REACTIVATED: (
        "上届证件已重新激活，请妥善保管原证件（勿遗失或损坏），凭其入场",
        "Your previous certificate is valid again: keep it safe (not lost or damaged) and enter with it",
    ),
    S.EXPIRED: (
        "缴费截止时间已过，本次报名已失效；截止后到账的款项将原路退回",
        "The payment deadline passed and the registration has lapsed; money arriving later is refunded",
    ),
    S.REVIEW_FAILED: (
        "人员审核未通过，费用将原路退回，请留意短信或邮件",
        "The personnel review failed: the fee is being refunded, watch for the SMS or email",
    ),
    S.REFUNDED: ("费用已退回，无需其他操作", "The fee has been refunded: nothing more to do"),
    S.WITHDRAWN: (
        "报名已撤回，无需其他操作；如已缴费，费用将原路退回",
        "Withdrawn: nothing more to do; a fee already paid is refunded",
    ),
}

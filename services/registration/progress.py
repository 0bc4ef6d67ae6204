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
}

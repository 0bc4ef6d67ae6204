"""What every service's HTTP API shares: errors with codes and bilingual messages, health, internal auth."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from shared.contracts import DecisionResult
from shared.settings import Settings, get_settings


class ErrorBody(BaseModel):
    """Every 4xx answer: a code for programs, a message for people (Chinese and English)."""

    code: str
    message: str
    message_zh: str
    field: str | None = None
    details: list[dict[str, Any]] | None = None


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        message_zh: str | None = None,
        *,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(code=code, message=message, message_zh=message_zh or message, field=field)


def not_found(what: str, what_zh: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found", f"未找到{what_zh}")


def refused_by_workflow(error: WorkflowUpdateFailedError) -> ApiError:
    """A workflow's update validator said no, or an activity the update ran refused (someone registered
    the same unit meanwhile, say): the ApplicationError's type is the code."""
    cause: BaseException | None = error.cause
    if isinstance(cause, ActivityError):
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return ApiError(409, cause.type or "refused", cause.message, _REFUSALS_ZH.get(cause.type or ""))
    return ApiError(409, "refused", str(cause or error))


async def execute_update(
    client: Client, workflow_id: str, update: str, arg: BaseModel, *, closed: ApiError
) -> DecisionResult:
    """A buyer's or staff request to a workflow, for an HTTP handler: a refusal is a 409 with the
    workflow's code; a workflow that has closed answers ``closed``."""
    try:
        result: DecisionResult = await client.get_workflow_handle(workflow_id).execute_update(
            update, arg, result_type=DecisionResult
        )
    except WorkflowUpdateFailedError as exc:
        raise refused_by_workflow(exc) from exc
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        raise closed from exc
    return result


_REFUSALS_ZH = {
    "already_decided": "已作出审核决定，不能重复审核",
    "not_awaiting_review": "当前状态不在待审核",
    "not_under_review": "该单位当前不在审核中",
    "reason_required": "不通过时须填写原因",
    "decision_in_progress": "另一审核决定正在处理中",
    "not_rejected": "只有审核未通过的单位可以重新提交",
    "registration_closed": "报名已截止，不设现场报名",
    "certificate_in_production": "人员审核已通过，证件制作已开始，不能退款、换人或修改个人信息",
    "registration_ended": "该报名已结束（已过期、已撤回或已退款）",
    "transfer_being_confirmed": "转账凭证正在等待财务确认，请待确认结果后再操作",
    "revalidation_not_transferable": "证件延续使用仅限原持证人本人，不能换人",
    "not_transfer_order": "只有银行转账订单需要上传汇款凭证",
    "voucher_deadline_passed": "银行转账及上传汇款凭证的截止时间已过",
    "order_paid": "该订单已支付",
    "order_closed": "该订单已关闭",
    "voucher_pending": "汇款凭证已上传，正在等待财务确认",
    "no_voucher": "该订单尚未上传汇款凭证",
    "bank_reference_required": "确认转账时须填写银行交易流水号",
    "unit_already_registered": "该单位已报名本届展会",
    "already_registered": "该人员已报名本届展会，每人每届只能报名一次",
    "review_round_superseded": "信息已修改并进入新一轮审核，请按最新信息重新审核",
}


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse(exc.body.model_dump(exclude_none=True), status_code=exc.status)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": None}
        body = ErrorBody(
            code="invalid_input",
            message="Some fields are missing or invalid",
            message_zh="部分信息缺失或填写有误",
            field=str(first["field"]) if first["field"] else None,
            details=errors,
        )
        return JSONResponse(body.model_dump(exclude_none=True), status_code=422)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def add_health(app: FastAPI, service: str) -> None:
    @app.get("/healthz", tags=["operations"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}


_bearer = HTTPBearer(auto_error=False)


def require_internal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> None:
    """Service-to-service routes (/internal/...) need the shared bearer token."""
    expected = settings.internal_token.get_secret_value()
    if credentials is None or not secrets.compare_digest(credentials.credentials, expected):
        raise ApiError(401, "unauthorised", "a service token is required", "需要服务令牌")


def internal_headers(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.internal_token.get_secret_value()}"}

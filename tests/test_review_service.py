"""The review queue: a round closed without a decision (withdrawn, or superseded by new data) leaves the
queue, and staff deciding on it are told so. Against a real SQLite database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.review.activities import ReviewActivities
from services.review.api import app
from services.review.models import ReviewTask, StaffRole
from shared import contracts as c
from shared.settings import Settings, get_settings
from shared.types import Decision
from tests.service_env import service_context, staff_headers

OPENED = datetime(2023, 10, 2, 2, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("EXPO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EXPO_EDITION", "ciie6")
    get_settings.cache_clear()
    settings = get_settings()
    yield settings
    get_settings.cache_clear()


@pytest.fixture
async def activities(settings: Settings) -> AsyncIterator[ReviewActivities]:
    async with service_context("review", settings) as ctx:
        yield ReviewActivities(ctx)


@dataclass
class FakeHandle:
    calls: list[tuple[str, str, Any]]
    workflow_id: str

    async def execute_update(self, update: str, arg: Any, *, result_type: type[Any]) -> Any:
        self.calls.append((self.workflow_id, update, arg))
        return c.DecisionResult(status="approved")


@dataclass
class FakeTemporal:
    """Stands in for the workflows: records which workflow a decision was sent to."""

    calls: list[tuple[str, str, Any]] = field(default_factory=list)

    def get_workflow_handle(self, workflow_id: str) -> FakeHandle:
        return FakeHandle(self.calls, workflow_id)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FakeTemporal]]:
    async with app.router.lifespan_context(app):
        temporal = FakeTemporal()
        app.state.ctx.temporal = temporal
        transport = httpx.ASGITransport(app=app)
        administrator = await staff_headers(app.state.ctx, StaffRole.ADMINISTRATOR)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://review", headers=administrator
        ) as client:
            yield client, temporal


def task(subject_id: str, round: int = 1, kind: c.ReviewKind = c.ReviewKind.PERSON) -> c.OpenReviewTask:
    return c.OpenReviewTask(
        kind=kind,
        subject_id=subject_id,
        round=round,
        workflow_id=f"registration-ciie6-{subject_id}",
        edition="ciie6",
        mission="shanghai",
        sub_mission=None,
        unit_id="UNIT1",
        opened_at=OPENED + timedelta(minutes=round),
    )


def close(subject_id: str, round: int = 1, reason: str = "withdrawn", minutes: int = 30) -> c.CloseReviewTask:
    return c.CloseReviewTask(
        kind=c.ReviewKind.PERSON,
        subject_id=subject_id,
        round=round,
        reason=reason,
        at=OPENED + timedelta(minutes=minutes),
    )


async def queue(client: httpx.AsyncClient, *, pending: bool = True) -> list[tuple[str, int]]:
    status = "pending" if pending else "closed"
    answer = await client.get("/v1/queue", params={"kind": "person", "status": status})
    assert answer.status_code == 200
    return [(t["subject_id"], t["round"]) for t in answer.json()]


async def test_closed_tasks_leave_the_queue_once_and_stay_in_its_history(
    activities: ReviewActivities, api: tuple[httpx.AsyncClient, FakeTemporal]
) -> None:
    client, _ = api
    for subject in ("RWITHDRAWN", "RSTAYS"):
        await activities.open_task(task(subject))
    assert await queue(client) == [("RWITHDRAWN", 1), ("RSTAYS", 1)]

    await activities.close_task(close("RWITHDRAWN"))
    await activities.close_task(close("RWITHDRAWN", reason="retried later", minutes=45))  # a retry: no change
    assert await queue(client) == [("RSTAYS", 1)]
    history = (await client.get("/v1/queue", params={"kind": "person", "status": "closed"})).json()
    assert [(t["subject_id"], t["closed_at"], t["close_reason"], t["decision"]) for t in history] == [
        ("RWITHDRAWN", "2023-10-02T02:30:00Z", "withdrawn", None)
    ]

    # Closing a round that was decided keeps its decision; closing a round never opened changes nothing.
    await activities.record_decision(
        c.RecordDecision(
            kind=c.ReviewKind.PERSON,
            subject_id="RSTAYS",
            round=1,
            decision=Decision.APPROVE,
            reason=None,
            reviewer="qd",
            decided_at=OPENED + timedelta(hours=1),
        )
    )
    await activities.close_task(close("RSTAYS"))
    await activities.close_task(close("RNEVER"))
    async with activities.ctx.db.sessions() as session:
        decided = await session.scalar(select(ReviewTask).where(ReviewTask.subject_id == "RSTAYS"))
        assert (await session.scalar(select(ReviewTask).where(ReviewTask.subject_id == "RNEVER"))) is None
    assert decided is not None and decided.decision is Decision.APPROVE and decided.closed_at is None


async def test_a_decision_on_a_closed_task_is_refused_and_a_new_round_can_be_decided(
    activities: ReviewActivities, api: tuple[httpx.AsyncClient, FakeTemporal]
) -> None:
    client, temporal = api
    approve = {"decision": "approve", "reviewer": "qd"}

    await activities.open_task(task("RWITHDRAWN"))
    await activities.close_task(close("RWITHDRAWN"))
    refused = await client.post("/v1/registrations/RWITHDRAWN/decision", json=approve)
    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "review_task_closed"
    assert "withdrawn" in body["message"] and "关闭" in body["message_zh"]
    assert temporal.calls == []  # nothing reached the registration

    # A unit's closed round is refused the same way.
    await activities.open_task(task("UCHANGED", kind=c.ReviewKind.UNIT))
    await activities.close_task(
        c.CloseReviewTask(
            kind=c.ReviewKind.UNIT, subject_id="UCHANGED", round=1, reason="superseded", at=OPENED
        )
    )
    unit_refused = await client.post("/v1/units/UCHANGED/decision", json=approve)
    assert (unit_refused.status_code, unit_refused.json()["code"]) == (409, "review_task_closed")

    # Personal data changed under review: round 1 closes, round 2 opens and is the one staff decide.
    await activities.open_task(task("RCHANGED"))
    await activities.close_task(close("RCHANGED", reason="personal data changed"))
    await activities.open_task(task("RCHANGED", round=2))
    assert await queue(client) == [("RCHANGED", 2)]
    decided = await client.post("/v1/registrations/RCHANGED/decision", json=approve)
    assert decided.status_code == 200 and decided.json() == {"subject_id": "RCHANGED", "status": "approved"}
    assert [(workflow_id, update) for workflow_id, update, _ in temporal.calls] == [
        ("registration-ciie6-RCHANGED", c.UPDATE_DECIDE)
    ]


async def test_a_round_is_queued_with_ids_when_the_registration_service_does_not_answer(
    activities: ReviewActivities, api: tuple[httpx.AsyncClient, FakeTemporal]
) -> None:
    """The queue shows names read when a round opens (tests/test_console_pages.py); a registration
    service that does not answer then holds no review up: the round is queued, named by its ids."""
    client, _ = api
    settings = activities.ctx.settings
    unreachable = settings.model_copy(update={"registration_url": "http://127.0.0.1:9"})  # nothing listens
    async with service_context("review", unreachable) as ctx:
        await ReviewActivities(ctx).open_task(task("RNONAME"))
    (queued,) = (await client.get("/v1/queue", params={"kind": "person"})).json()
    assert (queued["subject_id"], queued["person_name"], queued["unit_name"]) == ("RNONAME", None, None)
    export = await client.get("/v1/queue/export", params={"kind": "person"})
    header, row = export.content.decode("utf-8-sig").splitlines()
    assert "姓名 / Name" in header and "单位名称 / Unit name" in header and "RNONAME" in row

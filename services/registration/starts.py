"""Saving a row and starting its workflow: the row is committed first, the workflow started after."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.exceptions import WorkflowAlreadyStartedError

from shared.http import ApiError
from shared.service import ServiceContext
from shared.temporal import start_workflow

log = logging.getLogger(__name__)

Undo = Callable[[AsyncSession], Awaitable[None]]


@dataclass
class Saving:
    """The open transaction of ``commit_then_start`` and the workflow to start once it has committed."""

    session: AsyncSession
    start: tuple[str, BaseModel, str, str] | None = field(default=None, init=False)

    def then_start(self, workflow: str, arg: BaseModel, *, id: str, summary: str) -> None:
        """The workflow to start after the commit (everything it needs read in this transaction)."""
        self.start = (workflow, arg, id, summary)


def workflow_unavailable() -> ApiError:
    return ApiError(
        503,
        "workflow_unavailable",
        "the request could not be completed just now and nothing was saved: please try again shortly",
        "系统暂时无法受理本次提交，信息未保存，请稍后重试",
    )


@asynccontextmanager
async def commit_then_start(ctx: ServiceContext, undo: Undo) -> AsyncIterator[Saving]:
    """A transaction whose rows are committed before the workflow set by ``then_start`` is started.

    Not started inside the transaction: on SQLite that would hold the write lock for the whole Temporal
    call (other requests answer "database is locked" under a burst), and the workflow's first activity
    could run before the commit and find no row. If the start fails, ``undo`` removes the rows again in
    a new transaction and the caller gets a 503: nothing is left that would refuse the retry. A workflow
    that already exists counts as started (ids are new per request: an earlier answer was lost)."""
    async with ctx.db.transaction() as session:
        saving = Saving(session)
        yield saving
    assert saving.start is not None, "commit_then_start without then_start"
    workflow, arg, workflow_id, summary = saving.start
    try:
        await start_workflow(ctx.temporal, workflow, arg, id=workflow_id, summary=summary)
    except WorkflowAlreadyStartedError:
        pass
    except BaseException as exc:  # a cancelled request undoes its rows too
        log.warning("workflow %s not started, its rows removed again: %r", workflow_id, exc)
        async with ctx.db.transaction() as session:
            await undo(session)
        if isinstance(exc, Exception):
            raise workflow_unavailable() from exc
        raise

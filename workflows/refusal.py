"""Refusing a staff or buyer request from a workflow with a machine-readable code."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError


def refuse(code: str, message: str) -> ApplicationError:
    """An error for an update validator: the update is rejected, nothing enters the history.

    The code travels as the error's type; the HTTP services map it to a 409 with that code.
    """
    return ApplicationError(message, type=code, non_retryable=True)

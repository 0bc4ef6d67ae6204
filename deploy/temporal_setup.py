"""Prepare a Temporal cluster for the system: the namespace, and the project's search attributes
(``shared/temporal.py``), through the operator service. Safe to run again: what exists is left alone.

    python -m deploy.temporal_setup                      # EXPO_TEMPORAL_ADDRESS, EXPO_TEMPORAL_NAMESPACE
    python -m deploy.temporal_setup --retention-days 400

Run by the Kubernetes Job ``temporal-setup`` and by compose before the workers start. It waits for
the frontend to answer (a Job may start before Temporal has), and a namespace registered just now may
take a few seconds to be known to every Temporal service, so adding the attributes is retried too.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from shared.logs import configure_logging
from shared.settings import Settings, get_settings
from shared.temporal import SEARCH_ATTRIBUTES, connect

log = logging.getLogger(__name__)
T = TypeVar("T")


class SetupError(Exception):
    """Something an operator must settle by hand (an attribute that exists with another type)."""


def wanted_attributes() -> dict[str, IndexedValueType.ValueType]:
    return {key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in SEARCH_ATTRIBUTES}


async def ensure_namespace(client: Client, retention: timedelta) -> bool:
    """Register ``client.namespace`` unless it exists; True if it was registered now."""
    try:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=client.namespace))
        return False
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
    request = RegisterNamespaceRequest(namespace=client.namespace, description="Expo buyer registration")
    request.workflow_execution_retention_period.FromTimedelta(retention)
    try:
        await client.workflow_service.register_namespace(request)
    except RPCError as clash:
        if clash.status is not RPCStatusCode.ALREADY_EXISTS:  # registered meanwhile
            raise
        return False
    return True


async def ensure_search_attributes(client: Client) -> list[str]:
    """Add the project's search attributes the namespace lacks; the names added, sorted."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    existing = dict(listed.custom_attributes)
    wanted = wanted_attributes()
    clashes = [name for name, kind in wanted.items() if name in existing and existing[name] != kind]
    if clashes:
        raise SetupError(
            "search attributes exist with another type: "
            + ", ".join(
                f"{name} is {IndexedValueType.Name(existing[name])}, wanted {IndexedValueType.Name(wanted[name])}"
                for name in clashes
            )
        )
    missing = {name: kind for name, kind in wanted.items() if name not in existing}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    return sorted(missing)


async def _retrying(action: Callable[[], Awaitable[T]], what: str, deadline: float) -> T:
    while True:
        try:
            return await action()
        except SetupError:
            raise
        except Exception as exc:
            if time.monotonic() > deadline:
                raise
            log.info("%s: not yet (%s); trying again", what, exc)
            await asyncio.sleep(2)


async def setup(settings: Settings, *, retention: timedelta, wait: float) -> list[str]:
    """Namespace and search attributes, waiting up to ``wait`` seconds for Temporal; the attributes added."""
    deadline = time.monotonic() + wait
    client = await _retrying(lambda: connect(settings), "connecting to Temporal", deadline)
    if await _retrying(lambda: ensure_namespace(client, retention), "namespace", deadline):
        log.info("namespace %s registered", client.namespace)
    added = await _retrying(lambda: ensure_search_attributes(client), "search attributes", deadline)
    log.info(
        "namespace %s: search attributes %s",
        client.namespace,
        f"added {', '.join(added)}" if added else "all present already",
    )
    return added


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--retention-days",
        type=int,
        default=90,
        help="how long closed workflows' histories are kept, for a namespace registered now (default 90)",
    )
    parser.add_argument("--wait", type=float, default=300, help="seconds to wait for Temporal (default 300)")
    args = parser.parse_args()
    configure_logging("temporal-setup")
    try:
        asyncio.run(setup(get_settings(), retention=timedelta(days=args.retention_days), wait=args.wait))
    except SetupError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        # The client's connection lives in the SDK's native runtime: let it go now, while the
        # interpreter is whole. Dropped during the interpreter's finalization instead, it can abort
        # the process (a fatal PyGILState_Release error) after the work is done.
        gc.collect()


if __name__ == "__main__":
    main()

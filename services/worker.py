"""A service's activity worker: ``python -m services.worker registration`` (or review, payment, ...).

Each service serves the activities listed by ``services.<name>.activities.activities`` on the task
queue named after it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib

from shared.logs import configure_logging
from shared.service import serve_activities
from shared.settings import SERVICES, get_settings
from shared.tracing import configure_tracing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", choices=SERVICES)
    service = parser.parse_args().service
    configure_logging(f"{service}-worker")
    configure_tracing(f"{service}-worker", get_settings())
    module = importlib.import_module(f"services.{service}.activities")
    asyncio.run(serve_activities(service, service, module.activities))


if __name__ == "__main__":
    main()

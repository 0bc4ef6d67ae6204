"""Create the object store's buckets that do not exist yet (``EXPO_BUCKET_*``); existing ones are left
alone. Run by the Kubernetes migration Job and by compose before the services start.

    python -m deploy.buckets
"""

from __future__ import annotations

from shared.settings import get_settings
from shared.storage import all_buckets, ensure_buckets


def main() -> None:
    settings = get_settings()
    ensure_buckets(settings)
    print(f"buckets present at {settings.s3_endpoint_url}: {', '.join(all_buckets(settings))}")


if __name__ == "__main__":
    main()

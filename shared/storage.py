"""The S3 object store (SeaweedFS in the embedded stack): clients, buckets, presigned URLs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from shared.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def s3_client(settings: Settings, *, public: bool = False) -> S3Client:
    """A client for the store; ``public=True`` signs URLs for the address a browser reaches."""
    endpoint = (
        (settings.s3_public_endpoint_url or settings.s3_endpoint_url) if public else settings.s3_endpoint_url
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
    )


def all_buckets(settings: Settings) -> list[str]:
    return [
        settings.bucket_photos,
        settings.bucket_certificates,
        settings.bucket_vouchers,
        settings.bucket_invoices,
    ]


def ensure_buckets(settings: Settings) -> None:
    client = s3_client(settings)
    for bucket in all_buckets(settings):
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError:
            client.create_bucket(Bucket=bucket)

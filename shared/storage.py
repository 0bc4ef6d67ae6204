"""The S3 object store (SeaweedFS in the embedded stack): clients, buckets, presigned URLs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
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


STREAM_CHUNK = 64 * 1024


@dataclass(frozen=True)
class StoredObject:
    """An object being read from the store: its size, and its bytes as they arrive (``chunks``, to
    be read once; the connection is closed when they end or the iteration stops)."""

    length: int
    chunks: AsyncIterator[bytes]


class ObjectStore:
    """The store as the services use it: one client per process (boto3 clients are thread-safe),
    blocking calls run on threads so they never stall the event loop."""

    def __init__(self, settings: Settings) -> None:
        self._client = s3_client(settings)
        self._public = s3_client(settings, public=True)

    async def get(self, bucket: str, key: str) -> bytes:
        def read() -> bytes:
            return self._client.get_object(Bucket=bucket, Key=key)["Body"].read()

        return await asyncio.to_thread(read)

    async def open(self, bucket: str, key: str) -> StoredObject:
        """The object, streamed: a download handed on without holding it in memory. Raises botocore's
        ClientError (``NoSuchKey``) if there is none."""
        answer = await asyncio.to_thread(self._client.get_object, Bucket=bucket, Key=key)
        body = answer["Body"]

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await asyncio.to_thread(body.read, STREAM_CHUNK):
                    yield chunk
            finally:
                body.close()

        return StoredObject(length=answer["ContentLength"], chunks=chunks())

    async def put(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        await asyncio.to_thread(
            self._client.put_object, Bucket=bucket, Key=key, Body=body, ContentType=content_type
        )

    async def size(self, bucket: str, key: str) -> int | None:
        """The object's size in bytes, or None if there is no such object."""
        try:
            head = await asyncio.to_thread(self._client.head_object, Bucket=bucket, Key=key)
        except ClientError:
            return None
        return head["ContentLength"]

    def presigned_put(self, bucket: str, key: str, content_type: str, expires_in: int) -> str:
        """A URL a browser uploads to directly (signing is local: no call to the store)."""
        return self._public.generate_presigned_url(
            "put_object",
            Params={"Bucket": bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=expires_in,
        )

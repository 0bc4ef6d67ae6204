"""Configuration for every process, read from the environment (prefix ``EXPO_``) or a ``.env`` file.

The defaults are the embedded stack of ``./expo start``: everything on 127.0.0.1, SQLite files and
the object store under ``var/``. Production overrides them through the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.codec import parse_keys

ServiceName = Literal["registration", "review", "payment", "certificate", "notification"]
SERVICES: tuple[ServiceName, ...] = ("registration", "review", "payment", "certificate", "notification")


class Settings(BaseSettings):
    # Inputs stay out of validation errors: many of these values are secrets (keys, passwords).
    model_config = SettingsConfigDict(
        env_prefix="EXPO_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Path("var")
    edition: str = "ciie6"
    # Run a past edition's calendar this many years later (a rehearsal: the embedded stack picks the
    # shift that leaves registration open today). 0 in production.
    edition_year_shift: int = 0
    # Rehearsals only (benchmarks: the deadline storm, bench/storm.py): every payment deadline of the
    # edition at this instant, e.g. a few minutes ahead, instead of the edition file's; extensions still
    # apply on top. Must carry its time zone. Unset (None) in production.
    rehearsal_payment_deadline: AwareDatetime | None = None

    # One URL for every service (each owns distinct tables and its own migration history), e.g.
    # postgresql://expo@db/expo. Unset: one SQLite file per service under data_dir.
    database_url: str | None = None

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://127.0.0.1:8233"

    s3_endpoint_url: str = "http://127.0.0.1:8333"
    s3_public_endpoint_url: str | None = None  # what a browser uses for presigned URLs, if different
    s3_region: str = "us-east-1"
    s3_access_key: str = "expo"
    s3_secret_key: SecretStr = SecretStr("expo-dev-secret")
    bucket_photos: str = "expo-photos"
    bucket_certificates: str = "expo-certificates"
    bucket_vouchers: str = "expo-vouchers"
    bucket_invoices: str = "expo-invoices"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "CIIE Buyer Registration <buyers@expo.example>"
    sms_outbox: Path | None = (
        None  # the embedded SMS provider's outbox file; default data_dir/sms-outbox.jsonl
    )

    # Where each service is reached over HTTP (by the other services and by the demo).
    registration_url: str = "http://127.0.0.1:8001"
    review_url: str = "http://127.0.0.1:8002"
    payment_url: str = "http://127.0.0.1:8003"
    certificate_url: str = "http://127.0.0.1:8004"
    notification_url: str = "http://127.0.0.1:8005"
    gateway_url: str = "http://127.0.0.1:8010"  # the payment gateway (the sandbox in development)
    courier_url: str = "http://127.0.0.1:8011"  # the express courier (the sandbox in development)

    # Service-to-service calls carry this bearer token on the /internal routes.
    internal_token: SecretStr = SecretStr("dev-internal-token")
    # The organiser's first administrator, created at start if missing (the embedded stack's default;
    # production sets EXPO_ADMIN_PASSWORD and changes it after the first login).
    admin_login: str = "admin@expo.local"
    admin_password: SecretStr = SecretStr("dev-Admin-2023-expo")
    # Keys the digests of one-time codes (password resets): a stolen table cannot be brute-forced.
    account_code_key: SecretStr = SecretStr("dev-account-code-key")
    # Key shared with the payment gateway: callbacks are signed with it (HMAC-SHA256).
    gateway_merchant_id: str = "EXPO-DEV-MERCHANT"
    gateway_key: SecretStr = SecretStr("dev-gateway-key")
    # Our customer account at the courier, and the key its API and tracking callbacks are signed with.
    courier_customer_id: str = "EXPO-DEV-CUSTOMER"
    courier_key: SecretStr = SecretStr("dev-courier-key")
    # Ed25519 seed (base64, 32 bytes) with which the organiser signs admission codes.
    admission_signing_seed: SecretStr = SecretStr("ZGV2LWFkbWlzc2lvbi1zaWduaW5nLXNlZWQtMzJieXQ=")

    # ---- Operations: probes and metrics (deploy/, shared/health.py, shared/metrics.py)
    # A worker process's own HTTP port for /healthz, /readyz and /metrics. 0: the worker serves none
    # (the embedded stack watches its processes itself).
    worker_http_port: int = 0
    # Where the Temporal SDK serves its own Prometheus metrics ("host:port"); unset: not served.
    temporal_metrics_bind: str | None = None

    # ---- Operations: tracing and logs (shared/tracing.py, shared/logs.py)
    # OTLP/HTTP endpoint that traces are exported to (http://otel-collector:4318); unset: not exported.
    otlp_endpoint: str | None = None

    # ---- Personal data: workflow payload encryption (shared/codec.py)
    # Keys that encrypt workflow payloads (AES-256-GCM): "key-id:base64 of 32 bytes", comma-separated;
    # the first encrypts, every one listed decrypts (rotation: put the new key first, keep the old).
    # Unset: payloads stay plain (tests of single services). The embedded stack sets a development key.
    payload_keys: SecretStr | None = None
    # Browser origins of the Temporal Web UI allowed to call the codec endpoint (review service, /codec)
    # with the staff login cookie, comma-separated.
    codec_cors_origins: str = "http://127.0.0.1:8233,http://localhost:8233"

    @field_validator("payload_keys")
    @classmethod
    def _payload_keys_well_formed(cls, value: SecretStr | None) -> SecretStr | None:
        """A malformed key list stops the process at start, with what is wrong (never the key)."""
        if value is None or not value.get_secret_value().strip():
            return None
        parse_keys(value.get_secret_value())
        return value

    @property
    def codec_origins(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/") for o in self.codec_cors_origins.split(",") if o.strip())

    def service_database_url(self, service: ServiceName) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    def service_url(self, service: ServiceName) -> str:
        url: str = getattr(self, f"{service}_url")
        return url

    @property
    def sms_outbox_path(self) -> Path:
        return self.sms_outbox or self.data_dir / "sms-outbox.jsonl"


@lru_cache
def get_settings() -> Settings:
    return Settings()

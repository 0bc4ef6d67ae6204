# Paths and addresses here are the containers', and the "secrets" are names of Secrets:
# ruff: noqa: S105, S108
"""Writes the deployment files from the process list (deploy/processes.py) and the settings
(shared/settings.py), so that neither can drift from the code:

- ``deploy/k8s/base/``: the kustomize base (namespace, ConfigMap, a Deployment per API and worker with
  probes on their health endpoints, Services, autoscalers, disruption budgets, the Ingress, the Jobs);
- ``deploy/k8s/secret.template.yaml``: the Secret every process reads, one key per secret setting;
- ``deploy/compose/compose.yaml`` and ``settings.env``: the same system on one host.

    python -m deploy.render            # after changing a process, a setting or a value below
    python -m deploy.render --check    # exit 1 if the files differ from what would be written (the tests do this)

The files are meant to be read (and the tests validate them against the Kubernetes schemas); what
differs between clusters (hosts, image, sizes) belongs in an overlay, see deploy/README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from deploy.processes import (
    API_PORT,
    CREATE_ADMIN,
    CREATE_BUCKETS,
    IMPORT_SHIPPED,
    MIGRATE,
    PRE_STOP_DELAY,
    PROCESSES,
    PRODUCTION,
    TEMPORAL_SETUP,
    WORKER_HTTP_PORT,
    ProcessSpec,
)
from shared.settings import ServiceName, Settings

DEPLOY = Path(__file__).parent
K8S_BASE = DEPLOY / "k8s" / "base"
SECRET_TEMPLATE = DEPLOY / "k8s" / "secret.template.yaml"
COMPOSE = DEPLOY / "compose"

NAMESPACE = "expo"
IMAGE = "expo-buyers"  # kustomize's `images:` (or compose's EXPO_IMAGE) names the real one
CONFIG_NAME = "expo-settings"
SECRET_NAME = "expo-secrets"
TLS_SECRET = "expo-tls"
SDK_METRICS_PORT = 9464  # the Temporal SDK's own Prometheus endpoint on workers (EXPO_TEMPORAL_METRICS_BIND)
UID = 10001  # the image's user (deploy/docker/Dockerfile)
HEADER = (
    "# Written by `python -m deploy.render` from deploy/processes.py and shared/settings.py: edit there.\n"
)

# The public hosts and what each serves to the internet; everything else (/internal, probes,
# /metrics) stays inside the cluster. The notification API is staff-internal and has no host.
PUBLIC_HOSTS: dict[ServiceName, tuple[str, tuple[str, ...]]] = {
    "registration": ("buyers.expo.example.com", ("/portal", "/static", "/v1", "/docs", "/openapi.json")),
    "review": ("staff.expo.example.com", ("/console", "/static", "/v1", "/codec", "/docs", "/openapi.json")),
    "payment": ("pay.expo.example.com", ("/finance", "/static", "/v1", "/docs", "/openapi.json")),
    "certificate": ("certificates.expo.example.com", ("/v1", "/docs", "/openapi.json")),
}
TEMPORAL_UI_HOST = "temporal.expo.example.com"  # served by the Temporal chart (deploy/temporal/values.yaml)


class _Dumper(yaml.SafeDumper):
    """Plain YAML: every mapping written out where it is used, no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _yaml(*docs: Any) -> str:
    text: str = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, width=120)
    return text


def public_url(service: ServiceName) -> str:
    return f"https://{PUBLIC_HOSTS[service][0]}"


def service_name(process: ProcessSpec) -> str:
    return process.name  # the Kubernetes Service of an API is named after its process


def internal_url(service: ServiceName) -> str:
    return f"http://{service}-api"  # the Service's port 80


def secret_fields() -> list[str]:
    """Settings kept in the Secret: every SecretStr, and the two that hold credentials as plain strings."""
    fields = [
        name
        for name, info in Settings.model_fields.items()
        if SecretStr in (info.annotation, *getattr(info.annotation, "__args__", ()))
    ]
    return sorted({*fields, "database_url", "s3_access_key"})


def env_name(field: str) -> str:
    return f"EXPO_{field.upper()}"


def cluster_settings() -> dict[str, str]:
    """The ConfigMap: every non-secret setting production sets (the rest keep their defaults)."""
    return {
        "EXPO_EDITION": "ciie6",
        "EXPO_EDITION_YEAR_SHIFT": "0",
        "EXPO_TEMPORAL_ADDRESS": "temporal-frontend.temporal.svc.cluster.local:7233",
        "EXPO_TEMPORAL_NAMESPACE": "expo",
        "EXPO_TEMPORAL_UI_URL": f"https://{TEMPORAL_UI_HOST}",
        "EXPO_S3_ENDPOINT_URL": "http://seaweedfs-s3.storage.svc.cluster.local:8333",
        "EXPO_S3_PUBLIC_ENDPOINT_URL": "https://files.expo.example.com",
        "EXPO_S3_REGION": "us-east-1",
        "EXPO_BUCKET_PHOTOS": "expo-photos",
        "EXPO_BUCKET_CERTIFICATES": "expo-certificates",
        "EXPO_BUCKET_VOUCHERS": "expo-vouchers",
        "EXPO_BUCKET_INVOICES": "expo-invoices",
        "EXPO_SMTP_HOST": "smtp.example.com",
        "EXPO_SMTP_PORT": "587",
        "EXPO_SMTP_USERNAME": "buyers@expo.example.com",
        "EXPO_SMTP_STARTTLS": "true",
        "EXPO_MAIL_FROM": "CIIE Buyer Registration <buyers@expo.example.com>",
        # Reached by the other services inside the cluster:
        "EXPO_REGISTRATION_URL": internal_url("registration"),
        "EXPO_REVIEW_URL": internal_url("review"),
        "EXPO_NOTIFICATION_URL": internal_url("notification"),
        # Given to the gateway and the courier as their callbacks' base: the public hosts.
        "EXPO_PAYMENT_URL": public_url("payment"),
        "EXPO_CERTIFICATE_URL": public_url("certificate"),
        "EXPO_GATEWAY_URL": "https://gateway.example.com",
        "EXPO_GATEWAY_MERCHANT_ID": "CHANGE-ME",
        "EXPO_COURIER_URL": "https://courier.example.com",
        "EXPO_COURIER_CUSTOMER_ID": "CHANGE-ME",
        "EXPO_ADMIN_LOGIN": "admin@expo.example.com",
        "EXPO_CODEC_CORS_ORIGINS": f"https://{TEMPORAL_UI_HOST}",
        "EXPO_WORKER_HTTP_PORT": str(WORKER_HTTP_PORT),
        "EXPO_TEMPORAL_METRICS_BIND": f"0.0.0.0:{SDK_METRICS_PORT}",
    }


# ------------------------------------------------------------------------------------------ Kubernetes


def _labels(process: ProcessSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": process.name, "app.kubernetes.io/part-of": "expo-buyers"}


def _resources(process: ProcessSpec) -> dict[str, Any]:
    # Badges and invoices are PDFs rendered in memory: the certificate and payment processes get more.
    heavy = process.service in ("certificate", "payment") or process.kind == "job"
    memory = ("384Mi", "768Mi") if heavy else ("256Mi", "512Mi")
    return {
        "requests": {"cpu": "100m", "memory": memory[0]},
        "limits": {"cpu": "1", "memory": memory[1]},
    }


def _container(process: ProcessSpec) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": process.name,
        "image": IMAGE,
        "args": [process.name],
        "envFrom": [{"configMapRef": {"name": CONFIG_NAME}}, {"secretRef": {"name": SECRET_NAME}}],
        "resources": _resources(process),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if process.kind == "job":
        return container
    port_name = "http" if process.kind == "api" else "health"
    ports = [{"name": port_name, "containerPort": process.http_port, "protocol": "TCP"}]
    if process.kind == "worker":
        ports.append({"name": "sdk-metrics", "containerPort": SDK_METRICS_PORT, "protocol": "TCP"})
    container["ports"] = ports

    def probe(path: str, **timing: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": port_name}, **timing}

    # Liveness asks only whether the process answers: a database outage must not restart every pod.
    container["startupProbe"] = probe("/healthz", periodSeconds=2, timeoutSeconds=3, failureThreshold=60)
    container["livenessProbe"] = probe("/healthz", periodSeconds=20, timeoutSeconds=3, failureThreshold=3)
    container["readinessProbe"] = probe("/readyz", periodSeconds=10, timeoutSeconds=8, failureThreshold=3)
    if process.kind == "api":
        # Keep serving while the endpoints controllers take the pod out of the Services.
        delay = int(PRE_STOP_DELAY.total_seconds())
        container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", str(delay)]}}}
    return container


def _pod_spec(containers: list[dict[str, Any]], grace: int, **extra: Any) -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": grace,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        **extra,
        "containers": containers,
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
    }


def _meta(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return meta


def deployment(process: ProcessSpec) -> list[dict[str, Any]]:
    """A Deployment, its autoscaler and disruption budget; an API also gets its Service."""
    labels = _labels(process)
    metrics_port = process.http_port
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(process.name, labels),
            "spec": {
                # No replicas: the autoscaler owns the count (an apply would reset it).
                "revisionHistoryLimit": 5,
                "selector": {"matchLabels": labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(metrics_port),
                            "prometheus.io/path": "/metrics",
                        },
                    },
                    "spec": _pod_spec([_container(process)], process.termination_grace_seconds),
                },
            },
        }
    ]
    if process.kind == "api":
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": _meta(service_name(process), labels),
                "spec": {
                    "selector": labels,
                    "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
                },
            }
        )
    docs.append(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(process.name, labels),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": process.name},
                "minReplicas": 2,
                "maxReplicas": 10 if process.kind == "api" else 6,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 70},
                        },
                    }
                ],
                # Scale down slowly: a worker leaving finishes its activities first.
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
            },
        }
    )
    docs.append(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _meta(process.name, labels),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
        }
    )
    return docs


def job(name: str, first: list[ProcessSpec], last: ProcessSpec) -> dict[str, Any]:
    """A Job running ``first`` in order (init containers), then ``last``."""
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "expo-buyers"}
    spec = _pod_spec(
        [_container(last)],
        30,
        restartPolicy="OnFailure",
        **({"initContainers": [_container(p) for p in first]} if first else {}),
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(name, labels),
        "spec": {
            "backoffLimit": 6,
            "activeDeadlineSeconds": 1800,
            # Gone an hour after it finished, so the next release's `kubectl apply` creates it anew.
            "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def ingress() -> dict[str, Any]:
    rules = []
    for service, (host, prefixes) in PUBLIC_HOSTS.items():
        backend = {"service": {"name": f"{service}-api", "port": {"name": "http"}}}
        paths = [{"path": prefix, "pathType": "Prefix", "backend": backend} for prefix in prefixes]
        rules.append({"host": host, "http": {"paths": paths}})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "expo-public",
            "annotations": {
                # Photos and transfer vouchers are uploaded through it.
                "nginx.ingress.kubernetes.io/proxy-body-size": "12m",
                "nginx.ingress.kubernetes.io/ssl-redirect": "true",
            },
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [host for host, _ in PUBLIC_HOSTS.values()], "secretName": TLS_SECRET}],
            "rules": rules,
        },
    }


def kubernetes_files() -> dict[Path, str]:
    def dump(*docs: dict[str, Any]) -> str:
        return HEADER + _yaml(*docs)

    apis = [p for p in PRODUCTION if p.kind == "api"]
    workers = [p for p in PRODUCTION if p.kind == "worker"]
    files = {
        "namespace.yaml": dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        "configmap.yaml": dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(CONFIG_NAME),
                "data": cluster_settings(),
            }
        ),
        "apis.yaml": dump(*(doc for p in apis for doc in deployment(p))),
        "workers.yaml": dump(*(doc for p in workers for doc in deployment(p))),
        "jobs.yaml": dump(
            # Migrations and buckets first (init containers), then the organiser's first administrator.
            job("expo-migrate", [MIGRATE, CREATE_BUCKETS], CREATE_ADMIN),
            job("expo-temporal-setup", [], TEMPORAL_SETUP),
        ),
        "ingress.yaml": dump(ingress()),
    }
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": list(files),
        "images": [{"name": IMAGE, "newName": IMAGE, "newTag": "latest"}],
    }
    files["kustomization.yaml"] = dump(kustomization)
    out = {K8S_BASE / name: text for name, text in files.items()}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_NAME, "namespace": NAMESPACE},
        "type": "Opaque",
        "stringData": {env_name(field): "CHANGE-ME" for field in secret_fields()},
    }
    out[SECRET_TEMPLATE] = (
        HEADER + "# Copy, fill in every value (delete the optional ones you do not use: EXPO_SMTP_PASSWORD,\n"
        "# EXPO_PAYLOAD_KEYS only if payloads stay unencrypted), apply, and keep the copy out of git.\n"
        + _yaml(secret)
    )
    return out


# ------------------------------------------------------------------------------------------ compose


def compose_settings() -> dict[str, str]:
    """Non-secret settings of the one-host stack (deploy/compose/settings.env)."""
    services = {p.service for p in PROCESSES if p.kind == "api" and p.service}
    return {
        "EXPO_TEMPORAL_ADDRESS": "temporal:7233",
        "EXPO_TEMPORAL_NAMESPACE": "default",
        "EXPO_TEMPORAL_UI_URL": "http://localhost:8233",
        "EXPO_S3_ENDPOINT_URL": "http://objects:8333",
        "EXPO_S3_PUBLIC_ENDPOINT_URL": "http://localhost:8333",
        "EXPO_SMTP_HOST": "mail",
        "EXPO_SMTP_PORT": "1025",
        **{env_name(f"{s}_url"): f"http://{s}-api:{API_PORT}" for s in sorted(services)},
        "EXPO_GATEWAY_URL": f"http://gateway-sandbox:{API_PORT}",
        "EXPO_COURIER_URL": f"http://courier-sandbox:{API_PORT}",
        "EXPO_CODEC_CORS_ORIGINS": "http://localhost:8233",
        "EXPO_WORKER_HTTP_PORT": str(WORKER_HTTP_PORT),
    }


# SeaweedFS as the embedded stack runs it (its binary is in the image), and the stack's mail catcher.
SEAWEEDFS = [
    "weed", "mini", "-dir=/var/lib/expo", "-ip=objects", "-ip.bind=0.0.0.0", "-s3.port=8333",
    "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
]  # fmt: skip
MAILBOX = [
    "python", "-m", "deploy.local.mailbox", "--dir", "/tmp/mail", "--host", "0.0.0.0",  # noqa: S104
    "--smtp-port", "1025", "--http-port", "1080",
]  # fmt: skip
COMPOSE_API_PORTS = {
    "registration-api": 8001,
    "review-api": 8002,
    "payment-api": 8003,
    "certificate-api": 8004,
    "notification-api": 8005,
    "gateway-sandbox": 8010,
    "courier-sandbox": 8011,
}


def compose() -> dict[str, Any]:
    image = "${EXPO_IMAGE:-expo-buyers:latest}"
    expo: dict[str, Any] = {
        "image": image,
        "env_file": ["settings.env", ".env"],
        "environment": {
            "EXPO_DATABASE_URL": "postgresql://expo:${POSTGRES_PASSWORD:?set in .env}@postgres:5432/expo"
        },
        "read_only": True,
        "tmpfs": ["/tmp"],
    }
    temporal_version = "${TEMPORAL_VERSION:-1.27.2}"
    services: dict[str, Any] = {
        "postgres": {
            "image": "postgres:16-bookworm",
            "environment": {
                "POSTGRES_USER": "expo",
                "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:?set in .env}",
                "POSTGRES_DB": "expo",
            },
            "volumes": ["postgres:/var/lib/postgresql/data"],
            "healthcheck": {
                "test": ["CMD-SHELL", "pg_isready -U expo -d expo"],
                "interval": "5s",
                "timeout": "5s",
                "retries": 20,
            },
            "restart": "unless-stopped",
        },
        # Temporal on the same PostgreSQL (its own databases: temporal, temporal_visibility).
        "temporal": {
            "image": f"temporalio/auto-setup:{temporal_version}",
            "environment": {
                "DB": "postgres12",
                "DB_PORT": "5432",
                "POSTGRES_USER": "expo",
                "POSTGRES_PWD": "${POSTGRES_PASSWORD:?set in .env}",
                "POSTGRES_SEEDS": "postgres",
            },
            "depends_on": {"postgres": {"condition": "service_healthy"}},
            "restart": "unless-stopped",
        },
        "temporal-ui": {
            "image": "temporalio/ui:${TEMPORAL_UI_VERSION:-2.34.0}",
            "environment": {
                "TEMPORAL_ADDRESS": "temporal:7233",
                "TEMPORAL_CORS_ORIGINS": "http://localhost:8233",
                "TEMPORAL_CODEC_ENDPOINT": "http://localhost:8002/codec",
                "TEMPORAL_CODEC_INCLUDE_CREDENTIALS": "true",
            },
            "ports": ["8233:8080"],
            "depends_on": ["temporal"],
            "restart": "unless-stopped",
        },
        # SeaweedFS as the embedded stack runs it (its binary is in the image): S3 on 8333.
        "objects": {
            "image": image,
            "entrypoint": SEAWEEDFS,
            "environment": {
                "AWS_ACCESS_KEY_ID": "${EXPO_S3_ACCESS_KEY:?set in .env}",
                "AWS_SECRET_ACCESS_KEY": "${EXPO_S3_SECRET_KEY:?set in .env}",
            },
            "volumes": ["objects:/var/lib/expo"],
            "ports": ["8333:8333"],
            "healthcheck": {"disable": True},
            "restart": "unless-stopped",
        },
        # A mail catcher: nothing is relayed; read the mail at http://localhost:1080.
        "mail": {
            "image": image,
            "entrypoint": MAILBOX,
            "ports": ["1080:1080"],
            "healthcheck": {"disable": True},
            "restart": "unless-stopped",
        },
    }
    done = {"condition": "service_completed_successfully"}
    # What each job waits for; the services wait for every job but the rehearsal's data.
    job_after: dict[str, dict[str, Any]] = {
        MIGRATE.name: {"postgres": {"condition": "service_healthy"}},
        CREATE_BUCKETS.name: {"objects": {"condition": "service_started"}},
        TEMPORAL_SETUP.name: {"temporal": {"condition": "service_started"}},
        CREATE_ADMIN.name: {MIGRATE.name: done},
        IMPORT_SHIPPED.name: {MIGRATE.name: done},
    }
    for process in PROCESSES:
        service: dict[str, Any] = {**expo, "command": [process.name]}
        if process.kind == "job":
            services[process.name] = {
                **service,
                "depends_on": job_after[process.name],
                "restart": "on-failure",
            }
            continue
        if process.kind != "sandbox":
            service["depends_on"] = {
                name: done for name in (MIGRATE.name, CREATE_BUCKETS.name, TEMPORAL_SETUP.name)
            }
        if process.name in COMPOSE_API_PORTS:
            service["ports"] = [f"{COMPOSE_API_PORTS[process.name]}:{API_PORT}"]
        service["restart"] = "unless-stopped"
        service["stop_grace_period"] = f"{process.termination_grace_seconds}s"
        services[process.name] = service
    return {"name": "expo-buyers", "services": services, "volumes": {"postgres": {}, "objects": {}}}


def compose_files() -> dict[Path, str]:
    settings_env = "".join(f"{key}={value}\n" for key, value in compose_settings().items())
    env_example = [
        "# Copy to .env (next to compose.yaml) and change every value. Read by compose and by the services.",
        "EXPO_IMAGE=expo-buyers:latest",
        "POSTGRES_PASSWORD=change-me",
        "# The shipped edition's registration closed in 2023: to try the system, move its calendar ahead",
        "# by the years `./expo start` prints (a rehearsal); production leaves 0.",
        "EXPO_EDITION_YEAR_SHIFT=0",
        "# Random values, except EXPO_ADMISSION_SIGNING_SEED: base64 of 32 random bytes",
        "# (`python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'`).",
        *(
            f"{env_name(field)}={'expo' if field == 's3_access_key' else 'change-me'}"
            for field in secret_fields()
            if field not in ("database_url", "smtp_password", "payload_keys")
        ),
        "# Encrypts workflow payloads: `python -c 'from shared.codec import new_key_entry; print(new_key_entry(\"k1\"))'`",
        "EXPO_PAYLOAD_KEYS=",
    ]
    return {
        COMPOSE / "compose.yaml": HEADER + _yaml(compose()),
        COMPOSE / "settings.env": HEADER + settings_env,
        COMPOSE / ".env.example": HEADER + "\n".join(env_example) + "\n",
    }


def all_files() -> dict[Path, str]:
    return {**kubernetes_files(), **compose_files()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if anything differs")
    args = parser.parse_args()
    stale = [path for path, text in all_files().items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"out of date: {path}", file=sys.stderr)
        sys.exit(1 if stale else 0)
    for path, text in all_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"{len(stale)} file(s) written" if stale else "everything up to date")


if __name__ == "__main__":
    main()

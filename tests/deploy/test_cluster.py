"""The Temporal cluster around treatyflow, checked offline (issue 18): mTLS and the authorizer on the
frontend, the NetworkPolicies of both namespaces evaluated flow by flow, the chart's own PDB
condition, the setup Job per release and the workers waiting for it, rollouts, database TLS,
retention, graceful shutdown, the connection budget, the alert rules and the Temporal dashboard.

The Helm chart is never rendered here (no helm binary, no network): its conditions are applied to
the values as the chart's templates write them (temporalio/helm-charts, tag temporal-1.2.0)."""

from __future__ import annotations

import ast
import functools
import json
import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_manifests import (COMPOSE_DIR, COMPOSE_FILE, DEPLOY, ENV_EXAMPLE, K8S, ROOT, TARGET_LABELS,
                                         clean_env, compose, containers, need, objects, one, parse_promql, run,
                                         selects, tool, workloads)

__all__ = ["compose"]  # the compose model, a fixture of test_manifests.py shared here
from treatyflow.config import Settings

GRACEFUL_SHUTDOWN = Settings.graceful_shutdown  # the worker's, unless TREATYFLOW_GRACEFUL_SHUTDOWN says otherwise

VALUES = K8S / "temporal-values.yaml"
RULES = DEPLOY / "prometheus" / "rules"
TEMPORAL_DASHBOARD = DEPLOY / "grafana" / "temporal-server-dashboard.json"
SERVER_SERVICES = ("frontend", "internal-frontend", "history", "matching", "worker")
# chart 1.2.0's values.yaml: which services are enabled unless the values say otherwise
CHART_ENABLED = {"frontend": True, "internal-frontend": False, "history": True, "matching": True, "worker": True}
# PostgreSQL's connections kept for superusers (superuser_reserved_connections) and for the
# operators' own sessions (backups, psql, the schema jobs)
RESERVED_CONNECTIONS = 3 + 10


@functools.cache
def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


@functools.cache
def temporal_objects() -> tuple[dict[str, Any], ...]:
    result = run(tool("kubectl"), "kustomize", str(K8S / "temporal"))
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def temporal_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in temporal_objects() if doc["kind"] == kind]


def certificate_for(secret: str, namespace: str) -> dict[str, Any]:
    (found,) = [c for c in temporal_kind("Certificate")
                if c["spec"]["secretName"] == secret and c["metadata"]["namespace"] == namespace]
    return found


def issuing_ca(certificate: dict[str, Any]) -> str:
    """The Secret of the CA that signs a certificate (its issuer's `ca.secretName`)."""
    ref = certificate["spec"]["issuerRef"]
    (issuer,) = [i for i in temporal_objects() if i["kind"] == ref["kind"] and i["metadata"]["name"] == ref["name"]]
    return issuer["spec"]["ca"]["secretName"]


def mounted_secrets(volumes: list[dict[str, Any]], mounts: list[dict[str, Any]]) -> dict[str, str]:
    """mount path -> Secret name (mounted whole, never optional)."""
    by_name = {v["name"]: v for v in volumes}
    found = {}
    for mount in mounts:
        secret = by_name[mount["name"]].get("secret")
        if secret:
            assert not secret.get("optional"), f"{secret['secretName']} is optional"
            found[mount["mountPath"].rstrip("/")] = secret["secretName"]
    return found


def secret_of(path: str, mounts: dict[str, str]) -> tuple[str, str]:
    """(Secret, key) a file path reads, through the mounts."""
    directory, _, key = path.rpartition("/")
    assert directory in mounts, f"{path} is not in a mounted Secret ({sorted(mounts)})"
    return mounts[directory], key


# ---------------------------------------------------------------------------------------------- item 1

def test_temporal_serves_mtls_on_the_frontend_and_between_its_services():
    server = values()["server"]
    mounts = mounted_secrets(server["additionalVolumes"], server["additionalVolumeMounts"])
    tls = server["config"]["tls"]
    assert tls["refreshInterval"]  # cert-manager's renewals are read without a restart
    secrets = {}
    for part in ("internode", "frontend"):
        side = tls[part]["server"]
        assert side["requireClientAuth"] is True, part
        files = {secret_of(side[k], mounts) for k in ("certFile", "keyFile")} | \
            {secret_of(f, mounts) for f in side["clientCaFiles"]}
        (secret,) = {s for s, _ in files}
        assert {k for _, k in files} == {"tls.crt", "tls.key", "ca.crt"}, part
        secrets[part] = secret
        for ca in tls[part]["client"]["rootCaFiles"]:
            assert secret_of(ca, mounts) == (secret, "ca.crt")
    # both Secrets are issued by cert-manager, by two different CAs: a client's certificate never
    # opens the internal frontend, history or matching
    internode = certificate_for(secrets["internode"], "temporal")
    frontend = certificate_for(secrets["frontend"], "temporal")
    assert issuing_ca(internode) != issuing_ca(frontend)
    assert tls["internode"]["client"]["serverName"] in internode["spec"]["dnsNames"]
    assert tls["frontend"]["client"]["serverName"] in frontend["spec"]["dnsNames"]
    assert "server auth" in frontend["spec"]["usages"] and {"server auth", "client auth"} <= set(internode["spec"]["usages"])
    for certificate in temporal_kind("Certificate"):
        assert certificate["spec"]["privateKey"]["algorithm"] in ("ECDSA", "RSA", "Ed25519")
        if not certificate["spec"].get("isCA"):
            assert certificate["spec"]["privateKey"].get("rotationPolicy") == "Always", certificate["metadata"]["name"]


def test_the_frontend_authorizes_every_call_with_a_jwt():
    server = values()["server"]
    authorization = server["config"]["authorization"]
    assert authorization["authorizer"] == "default" and authorization["claimMapper"] == "default"
    assert authorization["permissionsClaimName"] == "permissions"
    uris = authorization["jwtKeyProvider"]["keySourceURIs"]
    assert uris and all(u.startswith("https://") for u in uris)
    # Temporal's own workers go through the internal frontend (internode mTLS): the public one can
    # deny every call without a token
    internal = server["internal-frontend"]
    assert internal["enabled"] is True
    # the chart probes both frontends with the kubelet's plaintext gRPC probe (values.yaml of 1.2.0):
    # against mTLS ports it never passes, so the values replace it
    for service in ("frontend", "internal-frontend"):
        probe = server[service]["readinessProbe"]
        assert "grpc" not in probe and probe["tcpSocket"]["port"] == "rpc", service
    assert values()["admintools"]["enabled"] is False


# who holds which token, and the permission the identity provider must put in its `permissions`
PRINCIPALS = {"worker-token": "treatyflow:write", "api-token": "treatyflow:write",
              "setup-token": "treatyflow:admin", "keda-token": "treatyflow:read"}


def test_each_client_presents_the_clients_certificate_and_its_own_token():
    config = one("ConfigMap", "treatyflow-config")["data"]
    assert config["TEMPORAL_TLS"] == "true"
    client_cert = certificate_for("treatyflow-temporal-tls", "treatyflow")
    frontend = certificate_for("temporal-frontend-tls", "temporal")
    assert issuing_ca(client_cert) == issuing_ca(frontend)  # the frontend's clientCaFiles trust it
    assert config["TEMPORAL_TLS_SERVER_NAME"] in frontend["spec"]["dnsNames"]
    assert config["TEMPORAL_ADDRESS"].split(":")[0] in frontend["spec"]["dnsNames"]
    expected = {"treatyflow-worker": "worker-token", "treatyflow-api": "api-token", "treatyflow-setup": "setup-token"}
    for workload in workloads():
        name = workload["metadata"]["name"]
        role = next(v for k, v in expected.items() if name.startswith(k))
        pod = workload["spec"]["template"]["spec"]
        for container in containers(pod):
            mounts = mounted_secrets(pod["volumes"], container.get("volumeMounts", []))
            for variable in ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_CLIENT_CERT_PATH",
                             "TEMPORAL_TLS_CLIENT_KEY_PATH"):
                assert secret_of(config[variable], mounts)[0] == "treatyflow-temporal-tls", (name, variable)
            env = {e["name"]: e for e in container.get("env", [])}
            ref = env["TEMPORAL_API_KEY"]["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) == ("treatyflow-temporal-auth", role), (name, container["name"])
    # KEDA's scaler: the same certificate, a read-only token
    (auth,) = objects("TriggerAuthentication")
    params = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert params == {"ca": ("treatyflow-temporal-tls", "ca.crt"), "cert": ("treatyflow-temporal-tls", "tls.crt"),
                      "key": ("treatyflow-temporal-tls", "tls.key"), "apiKey": ("treatyflow-temporal-auth", "keda-token")}
    (scaled,) = objects("ScaledObject")
    trigger = next(t for t in scaled["spec"]["triggers"] if t["type"] == "temporal")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert trigger["metadata"]["tlsServerName"] in frontend["spec"]["dnsNames"]
    # the UI: its own client certificate of the same CA, host verification on
    web = values()["web"]
    env = {e["name"]: e["value"] for e in web["additionalEnv"]}
    mounts = mounted_secrets(web["additionalVolumes"], web["additionalVolumeMounts"])
    for variable, key in (("TEMPORAL_TLS_CA", "ca.crt"), ("TEMPORAL_TLS_CERT", "tls.crt"), ("TEMPORAL_TLS_KEY", "tls.key")):
        secret, found = secret_of(env[variable], mounts)
        assert found == key
        assert issuing_ca(certificate_for(secret, "temporal")) == issuing_ca(frontend)
    assert env["TEMPORAL_TLS_ENABLE_HOST_VERIFICATION"] == "true"
    assert env["TEMPORAL_TLS_SERVER_NAME"] in frontend["spec"]["dnsNames"]
    # the chart's namespace job: the internode certificate, to the internal frontend
    tools = values()["admintools"]
    env = {e["name"]: e["value"] for e in tools["additionalEnv"]}
    mounts = mounted_secrets(tools["additionalVolumes"], tools["additionalVolumeMounts"])
    assert env["TEMPORAL_TLS"] == "true"
    for variable in ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH"):
        assert secret_of(env[variable], mounts)[0] == "temporal-internode-tls", variable
    # every principal's permission is documented with the Secret key that carries its token
    readme = (DEPLOY / "README.md").read_text()
    for key, permission in PRINCIPALS.items():
        assert re.search(rf"{key}.*`{permission}`", readme), (key, permission)
    assert "`temporal-system:admin`" in readme  # operators


# ---------------------------------------------------------------------------------------------- network policies

CHART = {"app.kubernetes.io/name": "temporal", "app.kubernetes.io/instance": "temporal"}
PODS = {  # (namespace, labels) of every pod that talks to Temporal or that Temporal talks to
    **{f"temporal/{s}": ("temporal", {**CHART, "app.kubernetes.io/component": s}) for s in SERVER_SERVICES},
    "temporal/web": ("temporal", {**CHART, "app.kubernetes.io/component": "web"}),
    "temporal/jobs": ("temporal", {**CHART, "app.kubernetes.io/component": "database"}),
    "treatyflow/worker": ("treatyflow", {"app.kubernetes.io/name": "treatyflow", "app.kubernetes.io/component": "worker"}),
    "treatyflow/api": ("treatyflow", {"app.kubernetes.io/name": "treatyflow", "app.kubernetes.io/component": "api"}),
    "treatyflow/setup": ("treatyflow", {"app.kubernetes.io/name": "treatyflow", "app.kubernetes.io/component": "setup"}),
    "keda/operator": ("keda", {"app": "keda-operator"}),
    "default/anything": ("default", {"app": "curious"}),
    "database/postgresql": ("database", {"app": "postgresql"}),
}
PORTS = {"frontend": 7233, "internal-frontend": 7236, "history": 7234, "matching": 7235, "worker": 7239}


def policies() -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for doc in objects("NetworkPolicy"):
        found.setdefault("treatyflow", []).append(doc)
    for doc in temporal_kind("NetworkPolicy"):
        found.setdefault(doc["metadata"]["namespace"], []).append(doc)
    return found


def peer_matches(peer: dict[str, Any], own_namespace: str, namespace: str, labels: dict[str, str]) -> bool:
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}):
            return False
    elif namespace != own_namespace:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], labels)


def rule_allows(rule: dict[str, Any], peers_key: str, own_namespace: str, namespace: str, labels: dict[str, str],
                port: int) -> bool:
    ports = rule.get("ports")
    if ports and not any(p.get("port") == port for p in ports):
        return False
    peers = rule.get(peers_key)
    return not peers or any(peer_matches(p, own_namespace, namespace, labels) for p in peers)


def allowed(source: str, target: str, port: int) -> bool:
    """Whether a TCP connection from one pod to another on a port passes both ends' policies (a
    namespace without policies allows everything, as Kubernetes does)."""
    (src_ns, src), (dst_ns, dst) = PODS[source], PODS[target]
    by_ns = policies()
    egress = [p["spec"] for p in by_ns.get(src_ns, []) if "Egress" in p["spec"]["policyTypes"]
              and selects(p["spec"]["podSelector"], src)]
    ingress = [p["spec"] for p in by_ns.get(dst_ns, []) if "Ingress" in p["spec"]["policyTypes"]
               and selects(p["spec"]["podSelector"], dst)]
    out_ok = not egress or any(rule_allows(r, "to", src_ns, dst_ns, dst, port) for s in egress for r in s.get("egress", []))
    in_ok = not ingress or any(rule_allows(r, "from", dst_ns, src_ns, src, port) for s in ingress for r in s.get("ingress", []))
    return out_ok and in_ok


def test_the_temporal_namespace_denies_by_default():
    specs = {p["metadata"]["name"]: p["spec"] for p in temporal_kind("NetworkPolicy")}
    deny = specs["default-deny-all"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert {p["metadata"]["namespace"] for p in temporal_kind("NetworkPolicy")} == {"temporal"}


@pytest.mark.parametrize(("source", "target", "port"), [
    ("treatyflow/worker", "temporal/frontend", 7233),
    ("treatyflow/api", "temporal/frontend", 7233),
    ("treatyflow/setup", "temporal/frontend", 7233),
    ("keda/operator", "temporal/frontend", 7233),
    ("temporal/web", "temporal/frontend", 7233),
    ("temporal/jobs", "temporal/internal-frontend", 7236),
    *[(f"temporal/{a}", f"temporal/{b}", PORTS[b]) for a in SERVER_SERVICES for b in SERVER_SERVICES if b != "worker"],
    *[(f"temporal/{a}", "temporal/worker", 6939) for a in SERVER_SERVICES],  # membership
    *[(f"temporal/{s}", "database/postgresql", 5432) for s in SERVER_SERVICES],
    ("temporal/jobs", "database/postgresql", 5432),
])
def test_temporal_flows_that_must_pass(source, target, port):
    assert allowed(source, target, port)


@pytest.mark.parametrize(("source", "target", "port"), [
    ("default/anything", "temporal/frontend", 7233),  # any other pod of the cluster
    ("treatyflow/worker", "temporal/internal-frontend", 7236),  # the authorizer's bypass
    ("treatyflow/worker", "temporal/history", 7234),
    ("treatyflow/api", "temporal/matching", 7235),
    ("temporal/web", "temporal/history", 7234),
    ("temporal/web", "database/postgresql", 5432),
    ("keda/operator", "temporal/internal-frontend", 7236),
    ("temporal/jobs", "temporal/frontend", 7233),
])
def test_temporal_flows_that_must_not(source, target, port):
    assert not allowed(source, target, port)


# ---------------------------------------------------------------------------------------------- item 3

def pdbs_rendered_by_chart_1_2_0(server: dict[str, Any]) -> set[str]:
    """templates/server-pdb.yaml of chart 1.2.0: a service's PDB only when the service is enabled,
    its *own* replicaCount is > 0 (Helm's `int` of a missing value is 0) and it has a budget."""
    rendered = set()
    for service in SERVER_SERVICES:
        own = server.get(service, {})
        enabled = own.get("enabled", CHART_ENABLED[service])
        if enabled and int(own.get("replicaCount") or 0) > 0 and own.get("podDisruptionBudget"):
            rendered.add(service)
    return rendered


def test_every_temporal_service_gets_its_disruption_budget():
    server = values()["server"]
    enabled = {s for s in SERVER_SERVICES if server.get(s, {}).get("enabled", CHART_ENABLED[s])}
    assert pdbs_rendered_by_chart_1_2_0(server) == enabled
    for service in enabled:
        own = server[service]
        replicas = own.get("replicaCount") or server["replicaCount"]  # the Deployment's `default`
        assert replicas >= 2 and own["podDisruptionBudget"]["minAvailable"] < replicas, service
    web = values()["web"]
    assert web["podDisruptionBudget"]["minAvailable"] < web["replicaCount"]
    # the condition bites: the values as issue 18 found them rendered none
    assert not pdbs_rendered_by_chart_1_2_0({s: {k: v for k, v in server[s].items() if k != "replicaCount"}
                                              for s in SERVER_SERVICES})


# ---------------------------------------------------------------------------------------------- item 5

def render_base_with_tag(tmp_path: Path, tag: str) -> list[dict[str, Any]]:
    base = tmp_path / tag / "base"
    shutil.copytree(K8S / "base", base)
    kustomization = base / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace('newTag: "0.2.0"', f'newTag: "{tag}"'))
    result = run(tool("kubectl"), "kustomize", str(base))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_setup_job_is_named_after_the_release(tmp_path):
    names = {}
    for tag in ("0.2.0", "0.3.1"):
        (job,) = [d for d in render_base_with_tag(tmp_path, tag) if d["kind"] == "Job"]
        names[tag] = job["metadata"]["name"]
        assert names[tag] == f"treatyflow-setup-{tag}"
        assert job["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":{tag}")
    assert names["0.2.0"] != names["0.3.1"]
    assert one("Job", "treatyflow-setup-0.2.0")  # the committed release


def test_workers_wait_for_the_namespace_setup_prepares(tmp_path):
    from workflows.search_attributes import ALL

    pod = one("Deployment", "treatyflow-worker")["spec"]["template"]["spec"]
    (wait,) = pod["initContainers"]
    env = {e["name"]: e.get("value") for e in wait["env"]}
    assert env["SEARCH_ATTRIBUTES"].split() == [a.name for a in ALL]
    assert wait["image"].startswith("temporalio/admin-tools:")
    assert "temporal operator search-attribute list" in wait["args"][0] and "$SEARCH_ATTRIBUTES" in wait["args"][0]
    assert any(e.get("configMapRef", {}).get("name") == "treatyflow-config" for e in wait["envFrom"])
    script = tmp_path / "wait.sh"
    script.write_text("#!/bin/sh\n" + wait["args"][0])
    result = run(tool("shellcheck"), "--shell=sh", "--severity=style", str(script))
    assert result.returncode == 0, result.stdout


# ---------------------------------------------------------------------------------------------- items 6, 7, 9, 10

def test_rollouts_wait_for_readiness():
    worker = one("Deployment", "treatyflow-worker")
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    for probe in ("startupProbe", "livenessProbe"):  # never Temporal's availability: no restart loop
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}, probe
    for name in ("treatyflow-worker", "treatyflow-api"):
        spec = one("Deployment", name)["spec"]
        assert spec["minReadySeconds"] >= 10 and spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
    assert values()["server"]["minReadySeconds"] >= 10 and values()["web"]["minReadySeconds"] >= 10


def test_database_connections_check_the_servers_certificate():
    server = values()["server"]
    for role, mounts in (("server", mounted_secrets(server["additionalVolumes"], server["additionalVolumeMounts"])),
                         ("jobs", mounted_secrets(values()["admintools"]["additionalVolumes"],
                                                  values()["admintools"]["additionalVolumeMounts"]))):
        for store in server["config"]["persistence"]["datastores"].values():
            attributes = store["sql"]["connectAttributes"]
            assert attributes["sslmode"] == "verify-full"
            assert secret_of(attributes["sslrootcert"], mounts) == ("temporal-db-ca", "ca.crt"), role
    # the archive and documents URL: documented with verify-full and the CA the pods mount
    readme = (DEPLOY / "README.md").read_text()
    (url,) = set(re.findall(r"postgresql://treatyflow:<password>@[^`\s]+", readme))
    query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
    assert query["sslmode"] == "verify-full"
    for name in ("treatyflow-worker", "treatyflow-api"):
        pod = one("Deployment", name)["spec"]["template"]["spec"]
        mounts = mounted_secrets(pod["volumes"], pod["containers"][0]["volumeMounts"])
        assert secret_of(query["sslrootcert"], mounts) == ("treatyflow-db-ca", "ca.crt"), name


def test_retention_is_weeks_not_years_and_agrees_everywhere():
    days = int(one("ConfigMap", "treatyflow-config")["data"]["TREATYFLOW_RETENTION_DAYS"])
    assert 30 <= days <= 90
    (namespace,) = values()["server"]["config"]["namespaces"]["namespace"]
    assert namespace["retention"] == f"{days * 24}h"
    compose = (COMPOSE_DIR / "compose.yaml").read_text()
    assert compose.count(f"TREATYFLOW_RETENTION_DAYS:-{days}}}") == 2
    assert f"TREATYFLOW_RETENTION_DAYS={days}\n" in (COMPOSE_DIR / ".env.example").read_text()
    assert f"{days * 24}h" in (COMPOSE_DIR / "scripts" / "temporal-namespace.sh").read_text()
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert "the record of closed cases" in operations and f"{days} days" in operations


def longest_activity_timeout() -> float:
    """The longest start-to-close timeout any workflow gives an activity (workflows/*.py)."""
    longest = 0.0
    for path in (ROOT / "workflows").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "start_to_close_timeout":
                call = node.value
                assert isinstance(call, ast.Call) and getattr(call.func, "id", "") == "timedelta", path
                kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
                longest = max(longest, timedelta(**kwargs).total_seconds())
    assert longest > 0
    return longest


def test_worker_grace_period_outlasts_the_graceful_shutdown_and_the_longest_activity():
    grace = one("Deployment", "treatyflow-worker")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    needed = max(GRACEFUL_SHUTDOWN, longest_activity_timeout() + 15)  # what worker.py must give (item 10)
    assert grace >= needed + 20  # and the connections closed, spans flushed, after it
    compose = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    assert float(compose["services"]["worker"]["stop_grace_period"].rstrip("s")) >= needed + 10


def test_worker_graceful_shutdown_outlasts_the_longest_activity():
    assert GRACEFUL_SHUTDOWN > longest_activity_timeout()


# ---------------------------------------------------------------------------------------------- item 4

def stated_max_connections() -> int:
    operations = (ROOT / "docs" / "operations.md").read_text()
    (limit,) = set(re.findall(r"max_connections = (\d+)", operations))
    return int(limit)


def test_connection_budget_adds_up():
    server = values()["server"]
    stores = server["config"]["persistence"]["datastores"]
    per_pod = 0
    for store in stores.values():
        sql = store["sql"]
        assert sql["maxIdleConns"] <= sql["maxConns"]  # idle connections are part of the open ones
        per_pod += sql["maxConns"]
    server_pods = sum(server[s].get("replicaCount") or server["replicaCount"] for s in SERVER_SERVICES
                      if server[s].get("enabled", CHART_ENABLED[s]))
    config = one("ConfigMap", "treatyflow-config")["data"]
    per_process = int(config["TREATYFLOW_ARCHIVE_POOL_SIZE"]) + int(config["TREATYFLOW_DOCUMENTS_POOL_SIZE"])
    (scaled,) = objects("ScaledObject")
    (hpa,) = objects("HorizontalPodAutoscaler", "hpa-cpu")
    workers = max(scaled["spec"]["maxReplicaCount"], hpa["spec"]["maxReplicas"])
    apis = one("Deployment", "treatyflow-api")["spec"]["replicas"]
    # a rolling update adds maxSurge pods of each Deployment for a while
    surge = sum(one("Deployment", d)["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
                for d in ("treatyflow-worker", "treatyflow-api"))
    total = server_pods * per_pod + (workers + apis + surge) * per_process
    limit = stated_max_connections()
    assert total + RESERVED_CONNECTIONS <= limit, (total, limit)
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert f"= {total}" in operations  # the arithmetic in the docs is this one
    compose = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    assert f"max_connections={limit}" in compose["services"]["postgresql"]["command"]


# ---------------------------------------------------------------------------------------------- item 11

def rule_files() -> list[Path]:
    files = sorted(RULES.glob("*.yml"))
    assert {f.name for f in files} >= {"treatyflow.yml", "temporal-server.yml"}
    return files


def test_alert_rules_parse_and_say_what_they_mean():
    names = set()
    for path in rule_files():
        groups = yaml.safe_load(path.read_text())["groups"]
        assert groups
        for group in groups:
            assert set(group) <= {"name", "interval", "rules", "limit", "labels"}, path
            for rule in group["rules"]:
                assert set(rule) <= {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
                try:
                    parse_promql(rule["expr"])
                except ValueError as exc:
                    pytest.fail(f"{path.name}: {rule.get('alert')}: {exc}")
                if "alert" in rule:
                    assert rule["alert"] not in names, rule["alert"]
                    names.add(rule["alert"])
                    assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
                    assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
                    assert re.fullmatch(r"\d+[smhd]", rule.get("for", "0s")), rule["alert"]
    assert len(names) >= 10


def alert_exprs(path: Path) -> dict[str, str]:
    return {r["alert"]: r["expr"] for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"] if "alert" in r}


def test_product_alerts_cover_the_operations_table():
    from tests.deploy.test_manifests import known_metrics, label_misuse, metrics_in

    exprs = alert_exprs(RULES / "treatyflow.yml")
    used = set().union(*(metrics_in(e) for e in exprs.values()))
    # besides ours: Prometheus' `up`, the kubelet's cAdvisor and kube-state-metrics
    known = known_metrics() | {
        "up": set(TARGET_LABELS),
        "container_memory_working_set_bytes": {"container", "pod", "namespace"},
        "kube_pod_container_resource_limits": {"container", "pod", "namespace", "resource", "unit"},
    }
    for name, expr in exprs.items():
        assert metrics_in(expr) <= set(known), (name, metrics_in(expr) - set(known))
        assert not label_misuse(expr, known), (name, label_misuse(expr, known))
    for metric in ("treatyflow_overdue_actions", "treatyflow_cases", "treatyflow_http_requests_total",
                   "treatyflow_http_request_seconds_bucket", "temporal_activity_execution_failed",
                   "temporal_workflow_task_schedule_to_start_latency_bucket"):
        assert metric in used, metric


TEMPORAL_SERVER_SIGNALS = {  # what the server's rules and dashboard must watch, by the metric that says it
    "schedule-to-start": "task_schedule_to_start_latency_bucket",
    "persistence errors": "persistence_errors",
    "persistence latency": "persistence_latency_bucket",
    "shards moving": "sharditem_created_count",
    "shards owned": "numshards_gauge",
    "frontend errors": "service_error_with_type",
}


def test_temporal_server_alerts_and_dashboard_watch_the_server():
    from tests.deploy.test_manifests import metrics_in

    used = set().union(*(metrics_in(e) for e in alert_exprs(RULES / "temporal-server.yml").values()))
    dashboard = json.loads(TEMPORAL_DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    on_dashboard = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            try:
                on_dashboard |= metrics_in(target["expr"])
            except ValueError as exc:
                pytest.fail(f"{panel['title']}: {exc}")
    for signal, metric in TEMPORAL_SERVER_SIGNALS.items():
        assert metric in used, f"no alert on {signal}"
        assert metric in on_dashboard, f"no panel for {signal}"


# ---------------------------------------------------------------------------------------------- compose

CERTS_SCRIPT = COMPOSE_DIR / "scripts" / "temporal-certs.sh"
# service -> the directory of the volume temporal-tls it may mount (what temporal-certs.sh makes)
TLS_MOUNTS = {"temporal": "server", "temporal-namespace": "admin", "temporal-ui": "ui",
              "treatyflow-setup": "treatyflow", "worker": "treatyflow", "api": "treatyflow"}


def tls_mount(service: dict[str, Any]) -> dict[str, Any] | None:
    found = [m for m in service.get("volumes", []) if m.get("source") == "temporal-tls"]
    assert len(found) <= 1
    return found[0] if found else None


def test_compose_temporal_speaks_mtls_only(compose):
    services = compose["services"]
    for name, service in services.items():
        mount = tls_mount(service)
        if name == "temporal-certs":
            assert mount and mount["target"] == "/certs" and not mount.get("volume", {}).get("subpath")
            continue
        if name not in TLS_MOUNTS:
            assert mount is None, f"{name} mounts the certificates"
            continue
        assert mount and mount["read_only"] and mount["volume"]["subpath"] == TLS_MOUNTS[name], name
    server = services["temporal"]
    env = server["environment"]
    assert env["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    target = tls_mount(server)["target"]
    for variable in ("TEMPORAL_TLS_SERVER_CA_CERT", "TEMPORAL_TLS_SERVER_CERT", "TEMPORAL_TLS_SERVER_KEY",
                     "TEMPORAL_TLS_FRONTEND_CERT", "TEMPORAL_TLS_FRONTEND_KEY", "TEMPORAL_TLS_CLIENT1_CA_CERT"):
        assert env[variable].startswith(target + "/"), variable
    assert server["depends_on"]["temporal-certs"]["condition"] == "service_completed_successfully"
    san = re.search(r'leaf server (\S+) internode "[^"]+" "([^"]+)"', CERTS_SCRIPT.read_text())
    assert san and f"DNS:{env['TEMPORAL_TLS_FRONTEND_SERVER_NAME']}" in san[2].split(",")
    for name in ("treatyflow-setup", "worker", "api", "temporal-namespace"):
        env = services[name]["environment"]
        target = tls_mount(services[name])["target"]
        assert env["TEMPORAL_TLS"] == "true" and env["TEMPORAL_TLS_SERVER_NAME"] == "temporal", name
        for variable in ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH"):
            assert env[variable].startswith(target + "/"), (name, variable)
    ui = services["temporal-ui"]["environment"]
    assert ui["TEMPORAL_TLS_ENABLE_HOST_VERIFICATION"] == "true" and ui["TEMPORAL_TLS_SERVER_NAME"] == "temporal"
    for variable in ("TEMPORAL_TLS_CA", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY"):
        assert ui[variable].startswith(tls_mount(services["temporal-ui"])["target"] + "/"), variable


def openssl(*args: str) -> Any:
    found = shutil.which("openssl")
    if not found:
        pytest.fail("openssl is not installed (Debian: apt-get install openssl)")
    return run(found, *args)


def test_compose_certificates_make_a_working_pki(tmp_path):
    out = tmp_path / "certs"
    env = {**clean_env(tmp_path), "TLS_DIR": str(out)}
    made = run("sh", str(CERTS_SCRIPT), env=env)
    assert made.returncode == 0, made.stderr
    internode, clients = out / "ca" / "internode.crt", out / "ca" / "clients.crt"
    server = openssl("verify", "-CAfile", str(internode), "-purpose", "sslserver", "-verify_hostname", "temporal",
                     str(out / "server" / "tls.crt"))
    assert server.returncode == 0, server.stdout + server.stderr
    for leaf in ("treatyflow", "ui", "admin"):
        assert openssl("verify", "-CAfile", str(clients), "-purpose", "sslclient", str(out / leaf / "tls.crt")).returncode == 0
        # a client's certificate is no server's, and the internode CA does not vouch for it
        assert openssl("verify", "-CAfile", str(clients), "-purpose", "sslserver", str(out / leaf / "tls.crt")).returncode != 0
        assert openssl("verify", "-CAfile", str(internode), str(out / leaf / "tls.crt")).returncode != 0
        assert (out / leaf / "ca.crt").read_bytes() == internode.read_bytes()  # they verify the server
    for leaf in ("server", "treatyflow", "admin"):
        assert (out / leaf / "tls.key").stat().st_mode & 0o777 == 0o400, leaf
    assert (out / "ca").stat().st_mode & 0o077 == 0  # the CAs' keys: nobody else
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = run("sh", str(CERTS_SCRIPT), env=env)
    assert again.returncode == 0 and "exist" in again.stdout
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # idempotent
    ignored = (COMPOSE_DIR / ".gitignore").read_text().split()
    assert "secrets/" in ignored  # and the certificates live in a volume, never in the tree


def test_compose_opensearch_profile_moves_visibility(tmp_path):
    env = {**clean_env(tmp_path), "TEMPORAL_OPENSEARCH": "true"}
    result = run(tool("docker-compose"), "--env-file", str(ENV_EXAMPLE), "--file", str(COMPOSE_FILE),
                 "--profile", "opensearch", "config", "--format", "json", cwd=COMPOSE_DIR, env=env)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    temporal = services["temporal"]
    assert temporal["environment"]["ENABLE_ES"] == "true" and temporal["environment"]["ES_SEEDS"] == "opensearch"
    assert temporal["depends_on"]["temporal-opensearch"]["condition"] == "service_completed_successfully"
    assert temporal["environment"]["ES_VIS_INDEX"] == services["temporal-opensearch"]["environment"]["ES_VIS_INDEX"]
    assert not services["opensearch"].get("ports")  # never published
    raw = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert raw["opensearch"]["profiles"] == raw["temporal-opensearch"]["profiles"] == ["opensearch"]
    assert raw["temporal"]["depends_on"]["temporal-opensearch"]["required"] is False


def test_compose_loads_the_alert_rules_and_the_temporal_dashboard(compose):
    services = compose["services"]
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (pattern,) = config["rule_files"]
    mount = next(m for m in services["prometheus"]["volumes"] if Path(m["source"]) == RULES)
    assert pattern == f"{mount['target']}/*.yml"
    assert any(Path(m["source"]) == TEMPORAL_DASHBOARD for m in services["grafana"]["volumes"])


# ---------------------------------------------------------------------------------------------- item 12: KEDA

KEDA_CRDS = Path(__file__).parent / "data" / "keda-crds-v2.17.3.json"


def strict(schema: Any) -> Any:
    """The CRD's structural schema as the API server applies it with strict field validation
    (kubectl's default): an object whose properties are listed takes no others, unless the schema
    keeps unknown fields; OpenAPI's int-or-string accepted as either."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {k: strict(v) for k, v in schema.items()}
    if schema.get("x-kubernetes-int-or-string"):
        schema.pop("type", None)
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in schema and "additionalProperties" not in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        schema["additionalProperties"] = False
    return schema


def test_keda_objects_validate_against_the_crd_schemas():
    jsonschema = need("jsonschema")
    data = json.loads(KEDA_CRDS.read_text())
    assert "kedacore/keda" in data["source"]
    checked = 0
    for doc in objects("ScaledObject") + objects("TriggerAuthentication"):
        schema = strict(data["schemas"][doc["kind"]])
        # metadata is the API server's (ObjectMeta), not the CRD's
        schema["properties"]["metadata"] = {"type": "object"}
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
        assert not errors, (doc["kind"], errors)
        checked += 1
    assert checked == 2
    # the schema bites: a field KEDA does not know, a string where it wants an integer
    (scaled,) = objects("ScaledObject")
    broken = json.loads(json.dumps(scaled))
    broken["spec"]["maxReplicas"] = 10
    broken["spec"]["minReplicaCount"] = "2"
    schema = strict(data["schemas"]["ScaledObject"])
    schema["properties"]["metadata"] = {"type": "object"}
    assert len(list(jsonschema.Draft7Validator(schema).iter_errors(broken))) == 2


# ---------------------------------------------------------------------------------------------- item 12: checkov

def documented_skips() -> dict[str, str]:
    """The checkov checks deploy/README.md ("Policy scan") skips, each with its reason."""
    readme = (DEPLOY / "README.md").read_text()
    section = readme.split("### Policy scan", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `(CKV_K8S_\d+)` \| (.+?) \|$", section, re.MULTILINE))


def test_rendered_manifests_pass_the_checkov_policy_scan(tmp_path):
    """checkov's Kubernetes checks (from PyPI, offline: --skip-download) on everything kustomize
    renders, with only the documented skips."""
    skips = documented_skips()
    assert skips and all(len(reason) > 40 for reason in skips.values()), skips
    files = []
    for overlay in ("", "hpa-cpu", "temporal"):
        result = run(tool("kubectl"), "kustomize", str(K8S / overlay))
        assert result.returncode == 0, result.stderr
        files.append(tmp_path / f"{overlay or 'base'}.yaml")
        files[-1].write_text(result.stdout)
    args = [tool("checkov"), "--framework", "kubernetes", "--quiet", "--compact", "--skip-download",
            "--output", "json", "--skip-check", ",".join(sorted(skips))]
    for path in files:
        args += ["--file", str(path)]
    result = run(*args, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}"
              for report in reports for c in report["results"]["failed_checks"]]
    assert not failed and result.returncode == 0, failed or result.stderr
    assert sum(r["summary"]["passed"] for r in reports) > 300  # the scan ran over every object
    assert not any(r["summary"]["parsing_errors"] for r in reports)


# ---------------------------------------------------------------------------------------------- item 8

def test_opensearch_visibility_block_is_ready_to_uncomment():
    """The commented-out `visibility-opensearch` store of the Helm values: uncommented, it is a
    datastore of the chart's elasticsearch driver, over TLS with host verification."""
    lines = VALUES.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "# visibility-opensearch:")
    indent = lines[start].index("#")
    block = []
    for line in lines[start:]:
        if not line.strip().startswith("#") or line.index("#") != indent:
            break
        block.append(line[indent + 2:])
    (store,) = yaml.safe_load("\n".join(block)).values()
    search = store["elasticsearch"]
    assert search["version"] in ("v7", "v8") and search["url"]["scheme"] == "https"
    assert search["existingSecret"] and "password" not in search
    assert search["tls"]["enabled"] is True and search["tls"]["enableHostVerification"] is True
    assert search["indices"]["visibility"]
    persistence = values()["server"]["config"]["persistence"]
    assert persistence["visibilityStore"] == "visibility"  # SQL unless the operator switches
    assert "visibility-opensearch" in VALUES.read_text().split("visibility-opensearch:")[0]  # the switch is described

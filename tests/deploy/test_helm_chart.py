"""The Helm chart: lint, values schema, Kubernetes schema validation and rendered objects."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from conftest import (
    REPO,
    CHART,
    CONFIG_DIR,
    NAMESPACE,
    PRODUCTION_VALUES,
    RELEASE,
    SCHEMAS,
    SECRETS_DIR,
    by_kind,
    config_toml,
    container,
    deep_merge,
    one,
    production_values,
    render,
    render_files,
    workload,
)

# Kubernetes versions the manifests are validated against: the chart's minimum-ish and a
# current one.
KUBE_VERSIONS = ["1.29.0", "1.35.0"]

# Custom resources: no schema ships with kubernetes-validate; their shape is checked by hand.
CRD_KINDS = {"ServiceMonitor": "monitoring.coreos.com/v1 is a Prometheus Operator CRD"}

# Overlays that make the chart create a Secret with every kind of credential.
SECRET_VALUES = {
    "schemaRegistry": {"username": "sr-user"},
    "secrets": {
        "schemaRegistryPassword": "sr-password-5f1d2c",
        "kafkaSaslPassword": "kafka-password-9a8b7c",
    },
    "kafka": {
        "saslPasswordFromSecret": True,
        "librdkafka": {"security.protocol": "SASL_SSL", "sasl.username": "connector"},
    },
}
AUTH_OVERLAYS = {
    "basic": {
        "auth": {"mode": "basic"},
        "secrets": {"basicCredentials": ["vendor:basic-password-0e1f2a3b"]},
    },
    "bearer": {
        "auth": {"mode": "bearer"},
        "secrets": {"bearerTokens": ["bearer-token-1234567890abcdef", "bearer-token-fedcba0987654321"]},
    },
    "oauth2": {
        "auth": {
            "mode": "oauth2",
            "oauth2": {
                "jwksUrl": "https://idp.example.com/.well-known/jwks.json",
                "issuer": "https://idp.example.com/",
                "audience": "riskos-connector",
                "tokenEndpoint": {"enabled": True, "ttlSecs": 900},
            },
        },
        "secrets": {"oauth2Clients": [{"clientId": "vendor", "clientSecret": "oauth2-client-secret-77aa"}]},
    },
    "hmac": {
        "auth": {"mode": "hmac", "hmac": {"header": "X-Signature", "timestampHeader": "X-Timestamp"}},
        "secrets": {"hmacSecrets": ["hmac-signing-secret-31415926"]},
    },
}


def _scenarios() -> dict[str, dict[str, Any]]:
    scenarios: dict[str, dict[str, Any]] = {
        "default": {},
        "production": production_values(),
    }
    for mode, overlay in AUTH_OVERLAYS.items():
        scenarios[f"secrets-{mode}"] = deep_merge(SECRET_VALUES, overlay)
    return scenarios


SCENARIOS = _scenarios()


def _secret_strings(values: dict[str, Any]) -> list[str]:
    """Every credential string in the values' `secrets` section."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for key, item in node.items():
                if key not in ("existingSecret", "annotations", "clientId"):
                    walk(item)

    walk(values.get("secrets", {}))
    return [s for s in found if s]


# --------------------------------------------------------------------------------------------
# Lint and values schema
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_helm_lint_is_clean(scenario: str) -> None:
    report = helm.lint(str(CHART), SCENARIOS[scenario], strict=True, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    # Severity: 1 info, 2 warning, 3 error. Info ("icon is recommended") is acceptable.
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert serious == []


def test_helm_lint_reports_broken_values() -> None:
    # The linter really evaluates the values: an out-of-range ack timeout is an error.
    report = helm.lint(str(CHART), {"delivery": {"ackTimeoutMs": 9000}}, strict=True)
    assert report["errors"], report


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_values_schema_accepts_the_shipped_values(scenario: str) -> None:
    with helm.Chart.load(str(CHART)) as chart:
        assert chart.schema is not None, "values.schema.json is missing"
        chart.validate_schema(SCENARIOS[scenario])


@pytest.mark.parametrize(
    "bad_values, where",
    [
        ({"delivery": {"ackTimeoutMs": 8001}}, "ackTimeoutMs"),
        ({"auth": {"mode": "digest"}}, "mode"),
        ({"replicas": 3}, "replicas"),
        ({"http": {"allowCidrs": ["35.199.32.202"]}}, "allowCidrs"),
        ({"http": {"path": "webhooks"}}, "path"),
        ({"spool": {"dir": "relative/spool"}}, "dir"),
        ({"kafka": {"bootstrapServers": ""}}, "bootstrapServers"),
        ({"schemaRegistry": {"compatibility": "SIDEWAYS"}}, "compatibility"),
        ({"schemas": {"encoding": "json"}}, "encoding"),
        ({"log": {"format": "xml"}}, "format"),
        ({"topics": {"replicationFactor": 0}}, "replicationFactor"),
        ({"secrets": {"bearerTokens": ["short"]}}, "bearerTokens"),
        ({"networkPolicy": {"egress": {"kafka": {"ports": [70000]}}}}, "ports"),
    ],
)
def test_values_schema_rejects_bad_values(bad_values: dict[str, Any], where: str) -> None:
    with helm.Chart.load(str(CHART)) as chart:
        with pytest.raises(helm.HelmValuesError) as error:
            chart.validate_schema(bad_values)
    assert where in str(error.value)


# --------------------------------------------------------------------------------------------
# Kubernetes schema validation
# --------------------------------------------------------------------------------------------


def _check_servicemonitor_shape(monitor: dict[str, Any]) -> None:
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"]
    spec = monitor["spec"]
    assert set(spec) <= {"namespaceSelector", "selector", "endpoints", "jobLabel"}
    assert spec["selector"]["matchLabels"]
    assert spec["endpoints"], "a ServiceMonitor needs endpoints"
    for endpoint in spec["endpoints"]:
        assert endpoint["port"] == "http"
        assert endpoint["path"] == "/metrics"
        assert endpoint["scheme"] in ("http", "https")
        for key in ("interval", "scrapeTimeout"):
            assert re.fullmatch(r"[0-9]+(ms|s|m|h)", endpoint[key]), endpoint[key]


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_manifests_validate_against_kubernetes_schemas(scenario: str, kube_version: str) -> None:
    objects = render(SCENARIOS[scenario])
    validated = []
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            _check_servicemonitor_shape(obj)
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {error.message}")
        validated.append(obj["kind"])
    # Schemas exist for every built-in kind (SchemaNotFoundError would have been raised).
    assert {"ConfigMap", "Service", "PodDisruptionBudget"} <= set(validated)
    assert {"Deployment", "StatefulSet"} & set(validated)


def test_kubernetes_validation_catches_a_broken_manifest(default_objects: list[dict[str, Any]]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(workload(default_objects)))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSIONS[-1], strict=True)


def test_servicemonitor_selects_the_client_service(production_objects: list[dict[str, Any]]) -> None:
    monitor = one(production_objects, "ServiceMonitor")
    _check_servicemonitor_shape(monitor)
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = by_kind(production_objects, "Service")
    selected = [
        s for s in services if selector.items() <= s["metadata"]["labels"].items()
    ]
    # Exactly the ClusterIP Service, not the StatefulSet's headless one (no double scrape).
    assert [s["metadata"]["name"] for s in selected] == [RELEASE]
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # The pods serve TLS in the production example.
    assert monitor["spec"]["endpoints"][0]["scheme"] == "https"


# --------------------------------------------------------------------------------------------
# What gets rendered
# --------------------------------------------------------------------------------------------


def test_default_render_kinds(default_objects: list[dict[str, Any]]) -> None:
    kinds = sorted(o["kind"] for o in default_objects)
    assert kinds == sorted(
        ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"]
    )


def test_production_render_kinds(production_objects: list[dict[str, Any]]) -> None:
    kinds = sorted(o["kind"] for o in production_objects)
    assert kinds == sorted(
        [
            "ConfigMap",
            "HorizontalPodAutoscaler",
            "Ingress",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
            "StatefulSet",
        ]
    )


def test_every_object_is_labelled_and_namespaced(production_objects: list[dict[str, Any]]) -> None:
    for obj in production_objects:
        meta = obj["metadata"]
        assert meta["namespace"] == NAMESPACE, obj["kind"]
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert meta["labels"]["app.kubernetes.io/name"] == "riskos-connector"


# --------------------------------------------------------------------------------------------
# Pod spec
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["default", "production"])
def test_probes(scenario: str) -> None:
    objects = render(SCENARIOS[scenario])
    c = container(objects)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080}
    expected_scheme = "HTTPS" if scenario == "production" else "HTTP"
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = c[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["port"] == "http", probe
        assert get["scheme"] == expected_scheme, probe
    # /readyz waits up to 2 s for the brokers.
    assert c["readinessProbe"]["timeoutSeconds"] >= 3
    assert c["args"] == ["serve", "--config", f"{CONFIG_DIR}/config.toml"]


@pytest.mark.parametrize("scenario", ["default", "production", "secrets-hmac"])
def test_security_context(scenario: str) -> None:
    objects = render(SCENARIOS[scenario])
    pod = workload(objects)["spec"]["template"]["spec"]
    pod_sc = pod["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] == 10001
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(objects)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"]
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # No Kubernetes API access and no RISKOS_* service-link variables.
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    # A writable /tmp despite the read-only root filesystem.
    mounts = {m["mountPath"]: m["name"] for m in container(objects)["volumeMounts"]}
    assert mounts["/tmp"] == "tmp"


@pytest.mark.parametrize(
    "grace_ms, pre_stop, margin",
    [(20000, 5, 5), (25001, 5, 5), (0, 0, 5), (8000, 0, 3), (59999, 10, 5)],
)
def test_termination_grace_is_derived_from_shutdown_grace(grace_ms: int, pre_stop: int, margin: int) -> None:
    values = {
        "shutdown": {
            "graceMs": grace_ms,
            "preStopSleepSeconds": pre_stop,
            "terminationMarginSeconds": margin,
        }
    }
    objects = render(values)
    pod = workload(objects)["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == pre_stop + math.ceil(grace_ms / 1000) + margin
    assert config_toml(objects)["shutdown"]["grace_ms"] == grace_ms
    lifecycle = container(objects).get("lifecycle")
    if pre_stop:
        assert lifecycle["preStop"]["exec"]["command"] == ["sleep", str(pre_stop)]
    else:
        assert lifecycle is None


def test_termination_grace_in_the_examples(
    default_objects: list[dict[str, Any]], production_objects: list[dict[str, Any]]
) -> None:
    assert workload(default_objects)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 5 + 20 + 5
    assert workload(production_objects)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 5 + 25 + 5


def test_config_and_secret_checksums_roll_the_pods() -> None:
    def annotations(values: dict[str, Any]) -> dict[str, str]:
        return workload(render(values))["spec"]["template"]["metadata"]["annotations"]

    base = annotations({"secrets": {"bearerTokens": ["token-aaaaaaaaaaaaaaaa"]}})
    same = annotations({"secrets": {"bearerTokens": ["token-aaaaaaaaaaaaaaaa"]}})
    log_changed = annotations({"secrets": {"bearerTokens": ["token-aaaaaaaaaaaaaaaa"]}, "log": {"level": "debug"}})
    token_changed = annotations({"secrets": {"bearerTokens": ["token-bbbbbbbbbbbbbbbb"]}})
    assert re.fullmatch(r"[0-9a-f]{64}", base["checksum/config"])
    assert base == same
    assert log_changed["checksum/config"] != base["checksum/config"]
    assert log_changed["checksum/secret"] == base["checksum/secret"]
    assert token_changed["checksum/secret"] != base["checksum/secret"]
    assert token_changed["checksum/config"] == base["checksum/config"]


# --------------------------------------------------------------------------------------------
# ConfigMap: config.toml and schemas
# --------------------------------------------------------------------------------------------

def _dotted(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path != "kafka.librdkafka":
            out.update(_dotted(value, path + "."))
        else:
            out[path] = value
    return out


def _connector_binary() -> Path:
    binary = REPO / "target" / "debug" / "riskos-connector"
    assert binary.exists(), f"{binary} is missing: run.sh builds it (cargo build --bin riskos-connector)"
    return binary


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_config_toml_is_accepted_by_the_connector(scenario: str, tmp_path: Path) -> None:
    """The rendered config.toml is loaded by the real binary (`config check`), which refuses
    unknown keys and bad values, so the chart and the connector cannot drift apart."""
    path = tmp_path / "config.toml"
    values = SCENARIOS[scenario]
    path.write_text(one(render(values), "ConfigMap")["data"]["config.toml"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKOS_")}
    result = subprocess.run(
        [str(_connector_binary()), "config", "check", "--config", str(path)],
        capture_output=True, text=True, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert effective["auth"]["mode"] == values.get("auth", {}).get("mode", "bearer")


def test_default_config_values(default_objects: list[dict[str, Any]]) -> None:
    config = config_toml(default_objects)
    assert config["http"] == {"listen": "0.0.0.0:8080", "path": "/webhooks/riskos", "max_body_bytes": 1048576}
    assert config["delivery"] == {"ack_timeout_ms": 5000}
    assert config["topics"] == {"prefix": "riskos.", "partitions": 6, "replication_factor": 3, "create": True}
    assert config["auth"] == {"mode": "bearer", "bearer": {"tokens_file": f"{SECRETS_DIR}/auth_bearer_tokens"}}
    assert config["log"] == {"format": "json", "level": "info"}


def test_production_config_values(production_objects: list[dict[str, Any]]) -> None:
    config = config_toml(production_objects)
    assert config["http"]["allow_cidrs"] == ["35.199.32.202/32", "3.138.161.243/32"]
    # Connection limits: only what the values set, the connector's defaults otherwise.
    assert config["http"]["max_connections"] == 8192
    assert config["http"]["idle_timeout_ms"] == 120000
    assert "header_read_timeout_ms" not in config["http"]
    assert config["http"]["tls"] == {
        "cert_file": f"{CONFIG_DIR}/tls/tls.crt",
        "key_file": f"{CONFIG_DIR}/tls/tls.key",
    }
    # librdkafka passthrough: every value a string, dotted keys kept.
    assert config["kafka"]["librdkafka"]["security.protocol"] == "SASL_SSL"
    assert all(isinstance(v, str) for v in config["kafka"]["librdkafka"].values())
    assert config["delivery"]["spool"] == {"dir": "/var/lib/riskos-connector/spool", "max_bytes": 4294967296}
    assert config["auth"]["oauth2"]["token_endpoint"] == {
        "clients_file": f"{SECRETS_DIR}/auth_oauth2_clients",
        "signing_secrets_file": f"{SECRETS_DIR}/auth_oauth2_signing",
        "ttl_secs": 900,
    }
    assert config["schema_registry"]["password_file"] == f"{SECRETS_DIR}/schema_registry_password"
    assert config["tracing"] == {
        "otlp_endpoint": "http://otel-collector.observability:4318",
        "service_name": "riskos-connector",
    }


def test_optional_schema_settings_are_rendered_when_set() -> None:
    objects = render(
        {
            "schemaRegistry": {"compatibility": "FULL"},
            "schemas": {"encoding": "confluent"},
            "topics": {"quarantine": "riskos.dead-letters"},
        }
    )
    config = config_toml(objects)
    assert config["schema_registry"]["compatibility"] == "FULL"
    assert config["schemas"]["encoding"] == "confluent"
    assert config["topics"]["quarantine"] == "riskos.dead-letters"
    # Unset, they are left to the connector's defaults.
    default = config_toml(render({}))
    assert "compatibility" not in default["schema_registry"]
    assert "encoding" not in default["schemas"]
    assert "quarantine" not in default["topics"]


def test_single_object_encoding_runs_without_a_registry() -> None:
    values = {
        "schemaRegistry": {"url": ""},
        "schemas": {"encoding": "single-object"},
        "networkPolicy": {"enabled": True, "egress": {"kafka": {"cidrs": ["10.20.0.0/16"]}}},
    }
    objects = render(values)
    config = config_toml(objects)
    assert "schema_registry" not in config
    assert config["schemas"]["encoding"] == "single-object"
    # No registry: no egress rule for it (Kafka and DNS only).
    egress = one(objects, "NetworkPolicy")["spec"]["egress"]
    assert len(egress) == 2
    assert egress[0]["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    # Without single-object encoding the registry URL stays required.
    with pytest.raises(helm.HelmError) as error:
        render({"schemaRegistry": {"url": ""}})
    assert "schemaRegistry.url is required" in str(error.value)


def test_schemas_in_the_chart_are_identical_to_the_repository() -> None:
    repo = {p.name: p.read_bytes() for p in SCHEMAS.glob("*.avsc")}
    chart = {p.name: p.read_bytes() for p in (CHART / "files" / "schemas").glob("*.avsc")}
    assert repo, "no schemas/*.avsc in the repository"
    assert sorted(chart) == sorted(repo), (
        "helm/riskos-connector/files/schemas/ differs from schemas/: run "
        "`rm -f helm/riskos-connector/files/schemas/*.avsc && cp schemas/*.avsc helm/riskos-connector/files/schemas/`"
    )
    for name, content in repo.items():
        assert chart[name] == content, f"{name} differs between schemas/ and the chart"


@pytest.mark.parametrize("scenario", ["default", "production"])
def test_schemas_in_the_configmap_equal_the_repository(scenario: str) -> None:
    objects = render(SCENARIOS[scenario])
    data = one(objects, "ConfigMap")["data"]
    rendered = {k: v for k, v in data.items() if k.endswith(".avsc")}
    repo = {p.name: p.read_text() for p in SCHEMAS.glob("*.avsc")}
    assert sorted(rendered) == sorted(repo)
    for name, text in repo.items():
        assert rendered[name] == text, name
    # Every schema is projected into the schemas volume mounted at schemas.dir.
    pod = workload(objects)["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "schemas")
    assert sorted(i["key"] for i in volume["configMap"]["items"]) == sorted(repo)
    mounts = {m["name"]: m for m in container(objects)["volumeMounts"]}
    assert mounts["schemas"]["mountPath"] == config_toml(objects)["schemas"]["dir"]
    assert mounts["config"]["mountPath"] == f"{CONFIG_DIR}/config.toml"
    assert mounts["config"]["subPath"] == "config.toml"


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(AUTH_OVERLAYS))
def test_credentials_live_in_the_secret_not_the_configmap(mode: str) -> None:
    values = SCENARIOS[f"secrets-{mode}"]
    objects = render(values)
    configmap_text = yaml.safe_dump(one(objects, "ConfigMap"))
    secret = one(objects, "Secret")
    secret_values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    credentials = _secret_strings(values)
    assert credentials
    for credential in credentials:
        assert credential not in configmap_text, f"a credential leaked into the ConfigMap ({mode})"
        assert any(credential in v for v in secret_values.values()), credential
    # Nothing else in the rendered manifests carries a credential either, except the Secret.
    for obj in objects:
        if obj["kind"] != "Secret":
            text = yaml.safe_dump(obj)
            assert not [c for c in credentials if c in text], obj["kind"]

    # Every *_file key points at a key of the mounted Secret.
    config = _dotted(config_toml(objects))
    files = {k: v for k, v in config.items() if k.endswith("_file") and not k.startswith("http.tls")}
    assert files, "no *_file keys rendered"
    for key, path in files.items():
        assert path.startswith(SECRETS_DIR + "/"), key
        assert path.rsplit("/", 1)[1] in secret["data"], f"{key} -> {path} is not in the Secret"
    pod = workload(objects)["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "secrets")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    mount = next(m for m in container(objects)["volumeMounts"] if m["name"] == "secrets")
    assert mount["mountPath"] == SECRETS_DIR and mount["readOnly"] is True

    # The Kafka SASL password arrives as an env var from the Secret.
    env = {e["name"]: e for e in container(objects)["env"]}
    ref = env["RISKOS_KAFKA__LIBRDKAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": secret["metadata"]["name"], "key": "kafka_sasl_password"}
    assert "value" not in env["RISKOS_KAFKA__LIBRDKAFKA__SASL_PASSWORD"]


def test_list_credentials_are_written_one_per_line() -> None:
    objects = render(SCENARIOS["secrets-bearer"])
    data = one(objects, "Secret")["data"]
    tokens = base64.b64decode(data["auth_bearer_tokens"]).decode().splitlines()
    assert tokens == AUTH_OVERLAYS["bearer"]["secrets"]["bearerTokens"]
    objects = render(SCENARIOS["secrets-oauth2"])
    clients = base64.b64decode(one(objects, "Secret")["data"]["auth_oauth2_clients"]).decode()
    assert clients == "vendor:oauth2-client-secret-77aa"


def test_a_bearer_token_is_generated_when_none_is_given(default_objects: list[dict[str, Any]]) -> None:
    secret = one(default_objects, "Secret")
    assert set(secret["data"]) == {"auth_bearer_tokens"}
    token = base64.b64decode(secret["data"]["auth_bearer_tokens"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{48}", token)
    assert token not in yaml.safe_dump(one(default_objects, "ConfigMap"))
    notes = next(v for k, v in render_files({}).items() if k.endswith("NOTES.txt"))
    assert "auth_bearer_tokens" in notes


def test_existing_secret_is_used_and_none_is_created(production_objects: list[dict[str, Any]]) -> None:
    assert by_kind(production_objects, "Secret") == []
    pod = workload(production_objects)["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "secrets")
    assert volume["secret"]["secretName"] == "riskos-connector-credentials"
    env = {e["name"]: e for e in container(production_objects)["env"]}
    ref = env["RISKOS_KAFKA__LIBRDKAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "riskos-connector-credentials"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"kafka": {"librdkafka": {"sasl.password": "hunter2-hunter2"}}}, "sasl.password"),
        ({"kafka": {"librdkafka": {"sasl_password": "hunter2-hunter2"}}}, "sasl_password"),
        ({"kafka": {"librdkafka": {"ssl.key.password": "hunter2-hunter2"}}}, "ssl.key.password"),
        ({"auth": {"mode": "basic"}}, "basicCredentials"),
        ({"auth": {"mode": "hmac"}}, "hmacSecrets"),
        ({"auth": {"mode": "oauth2"}}, "jwksUrl"),
        ({"schemaRegistry": {"username": "u"}}, "schemaRegistryPassword"),
        ({"schemaRegistry": {"url": ""}}, "schemaRegistry.url"),
        ({"kafka": {"saslPasswordFromSecret": True}}, "kafkaSaslPassword"),
        ({"http": {"tls": {"enabled": True}}}, "http.tls.secretName"),
        ({"networkPolicy": {"enabled": True}}, "networkPolicy.egress.kafka"),
    ],
)
def test_unsafe_or_incomplete_values_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError) as error:
        render(values)
    assert message in str(error.value)


def test_no_secret_volume_when_nothing_is_secret() -> None:
    objects = render({"auth": {"mode": "none"}})
    assert by_kind(objects, "Secret") == []
    pod = workload(objects)["spec"]["template"]["spec"]
    assert "secrets" not in [v["name"] for v in pod["volumes"]]
    assert config_toml(objects)["auth"] == {"mode": "none"}


# --------------------------------------------------------------------------------------------
# StatefulSet + spool, HPA, PDB
# --------------------------------------------------------------------------------------------


def test_spool_enabled_renders_a_statefulset_with_a_pvc(production_objects: list[dict[str, Any]]) -> None:
    assert by_kind(production_objects, "Deployment") == []
    sts = one(production_objects, "StatefulSet")
    claims = sts["spec"]["volumeClaimTemplates"]
    assert [c["metadata"]["name"] for c in claims] == ["spool"]
    assert claims[0]["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert claims[0]["spec"]["storageClassName"] == "gp3"
    assert claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    mount = next(m for m in container(production_objects)["volumeMounts"] if m["name"] == "spool")
    assert mount["mountPath"] == config_toml(production_objects)["delivery"]["spool"]["dir"]
    assert mount.get("readOnly") is not True
    # The governing Service exists and is headless.
    headless = next(s for s in by_kind(production_objects, "Service") if s["metadata"]["name"] == sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    # The volume group lets the non-root user write the spool.
    assert sts["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 10001


def test_spool_disabled_renders_a_deployment_without_pvc(default_objects: list[dict[str, Any]]) -> None:
    deployment = one(default_objects, "Deployment")
    assert "volumeClaimTemplates" not in deployment["spec"]
    assert "spool" not in config_toml(default_objects)["delivery"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert "spool" not in [m["name"] for m in container(default_objects)["volumeMounts"]]


def test_spool_with_the_default_storage_class() -> None:
    objects = render({"spool": {"enabled": True}})
    claim = one(objects, "StatefulSet")["spec"]["volumeClaimTemplates"][0]
    assert "storageClassName" not in claim["spec"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"


def test_hpa_and_pdb_when_enabled(production_objects: list[dict[str, Any]]) -> None:
    hpa = one(production_objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    sts = one(production_objects, "StatefulSet")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": sts["metadata"]["name"]}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 9)
    metrics = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]}
    assert metrics == {"cpu": 70, "memory": 80}
    # The autoscaler owns the replica count.
    assert "replicas" not in sts["spec"]
    pdb = one(production_objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2 and "maxUnavailable" not in pdb["spec"]
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_hpa_targets_the_deployment_without_spool() -> None:
    objects = render({"autoscaling": {"enabled": True}})
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert "replicas" not in one(objects, "Deployment")["spec"]


def test_no_hpa_by_default_and_fixed_replicas(default_objects: list[dict[str, Any]]) -> None:
    assert by_kind(default_objects, "HorizontalPodAutoscaler") == []
    assert one(default_objects, "Deployment")["spec"]["replicas"] == 2
    pdb = one(default_objects, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1


def test_pdb_can_be_disabled() -> None:
    assert by_kind(render({"podDisruptionBudget": {"enabled": False}}), "PodDisruptionBudget") == []


# --------------------------------------------------------------------------------------------
# Ingress and NetworkPolicy
# --------------------------------------------------------------------------------------------


def test_ingress_routes_only_the_webhook_paths_with_tls(production_objects: list[dict[str, Any]]) -> None:
    ingress = one(production_objects, "Ingress")
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"hosts": ["webhooks.example.com"], "secretName": "riskos-connector-ingress-tls"}]
    (rule,) = spec["rules"]
    assert rule["host"] == "webhooks.example.com"
    paths = [(p["path"], p["pathType"]) for p in rule["http"]["paths"]]
    assert paths == [("/webhooks/riskos", "Exact"), ("/oauth2/token", "Exact")]
    for p in rule["http"]["paths"]:
        assert p["backend"]["service"] == {"name": RELEASE, "port": {"name": "http"}}
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/whitelist-source-range"] == "35.199.32.202/32,3.138.161.243/32"


def test_ingress_tls_secret_defaults_to_the_release_name() -> None:
    ingress = one(render({"ingress": {"enabled": True}}), "Ingress")
    assert ingress["spec"]["tls"][0]["secretName"] == f"{RELEASE}-tls"
    assert [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]] == ["/webhooks/riskos"]


def test_networkpolicy_rules(production_objects: list[dict[str, Any]]) -> None:
    policy = one(production_objects, "NetworkPolicy")["spec"]
    values = production_values()["networkPolicy"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    pod_labels = workload(production_objects)["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()

    # Ingress: the ingress controller and (ServiceMonitor on) Prometheus, on the http port only.
    assert len(policy["ingress"]) == 2
    controller, prometheus = policy["ingress"]
    assert controller["from"] == [
        {
            "namespaceSelector": values["ingressController"]["namespaceSelector"],
            "podSelector": values["ingressController"]["podSelector"],
        }
    ]
    assert prometheus["from"] == [
        {
            "namespaceSelector": values["prometheus"]["namespaceSelector"],
            "podSelector": values["prometheus"]["podSelector"],
        }
    ]
    for rule in policy["ingress"]:
        assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]

    # Egress: Kafka, the registry and DNS, nothing else.
    assert len(policy["egress"]) == 3
    kafka, registry, dns = policy["egress"]
    assert kafka["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    assert kafka["ports"] == [{"port": 9096, "protocol": "TCP"}]
    assert registry["to"] == [{"ipBlock": {"cidr": "10.30.0.0/24"}}]
    assert registry["ports"] == [{"port": 443, "protocol": "TCP"}]
    assert sorted((p["port"], p["protocol"]) for p in dns["ports"]) == [(53, "TCP"), (53, "UDP")]
    assert dns["to"] == values["egress"]["dns"]["peers"]


def test_networkpolicy_without_servicemonitor_admits_only_the_ingress_controller() -> None:
    values = deep_merge(production_values(), {"serviceMonitor": {"enabled": False}})
    objects = render(values)
    policy = one(objects, "NetworkPolicy")["spec"]
    assert len(policy["ingress"]) == 1
    assert policy["ingress"][0]["from"][0]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}}
    assert by_kind(objects, "ServiceMonitor") == []


def test_networkpolicy_with_peers_direct_sources_and_open_dns() -> None:
    values = {
        "networkPolicy": {
            "enabled": True,
            "allowFromCidrs": ["35.230.191.253/32"],
            "egress": {
                "kafka": {"peers": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kafka"}}}]},
                "schemaRegistry": {"cidrs": ["10.1.2.3/32"]},
            },
        }
    }
    policy = one(render(values), "NetworkPolicy")["spec"]
    assert policy["ingress"][1]["from"] == [{"ipBlock": {"cidr": "35.230.191.253/32"}}]
    kafka, registry, dns = policy["egress"]
    assert kafka["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kafka"}}}]
    assert kafka["ports"] == [{"port": 9092, "protocol": "TCP"}]
    assert registry["ports"] == [{"port": 8081, "protocol": "TCP"}]
    assert "to" not in dns  # any resolver, port 53 only


# --------------------------------------------------------------------------------------------
# Documentation
# --------------------------------------------------------------------------------------------

# Values documented as a whole rather than key by key.
OPAQUE_VALUES = {
    "podSecurityContext",
    "securityContext",
    "resources",
    "networkPolicy.ingressController.namespaceSelector",
    "networkPolicy.ingressController.podSelector",
    "networkPolicy.prometheus.namespaceSelector",
    "networkPolicy.prometheus.podSelector",
}


def _value_paths(node: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in OPAQUE_VALUES:
            paths.extend(_value_paths(value, path + "."))
        else:
            paths.append(path)
    return paths


def test_readme_documents_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    paths = _value_paths(defaults)
    assert len(paths) > 50
    table_keys = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    missing = [p for p in paths if p not in table_keys]
    assert not missing, f"values not documented in README.md tables: {missing}"


def test_readme_covers_vendor_ips_and_auth_options() -> None:
    readme = (CHART / "README.md").read_text()
    for cidr in ("35.230.191.253/32", "35.199.32.202/32", "3.138.161.243/32"):
        assert cidr in readme
    for option in ("**Basic**", "**Bearer**", "**OAuth2**"):
        assert option in readme
    assert "examples/production-values.yaml" in readme


def test_production_example_turns_every_feature_on() -> None:
    values = production_values()
    for toggle in (
        ("ingress", "enabled"),
        ("ingress", "tls", "enabled"),
        ("autoscaling", "enabled"),
        ("podDisruptionBudget", "enabled"),
        ("serviceMonitor", "enabled"),
        ("networkPolicy", "enabled"),
        ("spool", "enabled"),
        ("http", "tls", "enabled"),
        ("kafka", "saslPasswordFromSecret"),
        ("auth", "oauth2", "tokenEndpoint", "enabled"),
    ):
        node: Any = values
        for key in toggle:
            node = node[key]
        assert node is True, ".".join(toggle)
    assert values["secrets"]["existingSecret"]
    assert values["http"]["allowCidrs"] and values["schemaRegistry"]["username"]
    assert PRODUCTION_VALUES.read_text().count("35.199.32.202/32") >= 2


def test_chart_metadata() -> None:
    with helm.Chart.load(str(CHART)) as chart:
        meta = chart.metadata
        templates = {t["name"] for t in chart.templates}
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "riskos-connector"
    assert templates >= {
        "templates/_helpers.tpl",
        "templates/NOTES.txt",
        "templates/configmap.yaml",
        "templates/workload.yaml",
    }


def test_packaged_chart_excludes_examples() -> None:
    with helm.Chart.load(str(CHART)) as chart:
        names = [f["name"] for f in chart.files]
    assert not [n for n in names if n.startswith("examples/")]
    assert sum(1 for n in names if n.startswith("files/schemas/")) == len(list(SCHEMAS.glob("*.avsc")))


def test_rendering_is_deterministic_given_tokens() -> None:
    values = SCENARIOS["secrets-bearer"]
    with helm.Chart.load(str(CHART)) as chart:
        first = chart.render(values, name=RELEASE, namespace=NAMESPACE)
        second = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert first == second
    # Without given tokens a fresh one is generated per render (outside a cluster).
    with helm.Chart.load(str(CHART)) as chart:
        a = chart.render({}, name=RELEASE, namespace=NAMESPACE)
        b = chart.render({}, name=RELEASE, namespace=NAMESPACE)
    secret = "riskos-connector/templates/secret.yaml"
    assert a[secret] != b[secret]

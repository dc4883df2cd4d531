"""The Helm chart: lint, values schema, Kubernetes schema validation and rendered objects."""

from __future__ import annotations

import base64
import copy
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
    CONFLUENT_CLOUD_VALUES,
    KAFKA_TLS_DIR,
    MSK_IAM_VALUES,
    NAMESPACE,
    PRODUCTION_VALUES,
    PROTECTION_DIR,
    PROTECTION_SECRET,
    REGISTRY_TLS_DIR,
    RELEASE,
    SCHEMAS,
    SECRETS_DIR,
    TWO_ENDPOINTS_VALUES,
    by_kind,
    chart_secret,
    config_toml,
    container,
    deep_merge,
    one,
    production_values,
    projected_files,
    protection_files,
    render,
    render_files,
    secret_files,
    secret_named,
    two_endpoints_values,
    workload,
    connector_binary,
)

# Kubernetes versions the manifests are validated against: the chart's minimum-ish and a
# current one.
KUBE_VERSIONS = ["1.29.0", "1.35.0"]

# Custom resources: no schema ships with kubernetes-validate; their shape is checked by hand.
CRD_KINDS = {"ServiceMonitor": "monitoring.coreos.com/v1 is a Prometheus Operator CRD"}

# Protection keys for the tests (`riskos-connector keys generate` output; test values only).
HASH_KEY = "test-h1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
ENCRYPTION_KEY = "test-e1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
KEY_LINE = re.compile(r"[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/]{43}=")

# Overlays that make the chart create a Secret with every kind of credential.
SECRET_VALUES = {
    "protection": {"hashKeys": [HASH_KEY], "encryptionKeys": [ENCRYPTION_KEY]},
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


def endpoint(name: str = "riskos", path: str = "/webhooks/riskos", **fields: Any) -> dict[str, Any]:
    """One endpoints[] item (a values list replaces the default one whole)."""
    return {"name": name, "path": path, **fields}


def endpoints(*items: dict[str, Any]) -> dict[str, Any]:
    return {"endpoints": list(items)}


# Overlays that give the default endpoint every kind of credential, one auth mode each.
AUTH_OVERLAYS = {
    "basic": endpoints(
        endpoint(auth={"mode": "basic"}, secrets={"basicCredentials": ["vendor:basic-password-0e1f2a3b"]})
    ),
    "bearer": endpoints(
        endpoint(
            auth={"mode": "bearer"},
            secrets={"bearerTokens": ["bearer-token-1234567890abcdef", "bearer-token-fedcba0987654321"]},
        )
    ),
    "oauth2": endpoints(
        endpoint(
            auth={
                "mode": "oauth2",
                "oauth2": {
                    "jwksUrl": "https://idp.example.com/.well-known/jwks.json",
                    "issuer": "https://idp.example.com/",
                    "audience": "riskos-connector",
                    "tokenEndpoint": {"enabled": True, "ttlSecs": 900},
                },
            },
            secrets={"oauth2Clients": [{"clientId": "vendor", "clientSecret": "oauth2-client-secret-77aa"}]},
        )
    ),
    "hmac": endpoints(
        endpoint(
            auth={"mode": "hmac", "hmac": {"header": "X-Signature", "timestampHeader": "X-Timestamp"}},
            secrets={"hmacSecrets": ["hmac-signing-secret-31415926"]},
        )
    ),
    "standard-webhooks": endpoints(
        endpoint(
            auth={"mode": "standard-webhooks", "standardWebhooks": {"signatures": "both", "toleranceSecs": 120}},
            secrets={
                "standardWebhooksSecrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                "standardWebhooksPublicKeys": ["whpk_6KwnOWlHA2Q8ROeR0yqnRkpYTQhyWhs6AGSmiXjN1xM="],
            },
        )
    ),
}

# Two endpoints with per-endpoint secrets: Production's inline (bearer tokens and a required
# header, i.e. a second key under production/), Sandbox's from an existing Secret.
TWO_ENDPOINTS_INLINE_PRODUCTION = endpoints(
    endpoint(
        "production",
        "/webhooks/riskos",
        topicPrefix="riskos.",
        envelopes=["event", "request_token"],
        allowCidrs=["35.199.32.202/32", "3.138.161.243/32"],
        rateLimitPerIp=1000,
        maxInFlight=128,
        auth={"mode": "bearer"},
        secrets={"bearerTokens": ["production-token-0123456789abcdef"]},
        requiredHeaders=[{"name": "X-RiskOS-Environment-Key", "values": ["env-key-production-4242", "env-key-next-4343"]}],
    ),
    endpoint(
        "sandbox",
        "/webhooks/riskos-sandbox",
        topicPrefix="riskos.sandbox.",
        allowCidrs=["35.230.191.253/32"],
        rateLimitPerIp=0,
        maxBodyBytesInFlight=16777216,
        cloudevents=True,
        auth={"mode": "basic"},
        existingSecret="riskos-sandbox-credentials",
    ),
)


# Issue 27: the customer's cluster and registry, secured. Every credential is a reference to a
# Secret made outside the chart; the overlays name the Secrets the way their makers do
# (cert-manager: ca.crt/tls.crt/tls.key; Strimzi: <cluster>-cluster-ca-cert, a KafkaUser's
# user.crt/user.key or password).
IRSA_ROLE = "arn:aws:iam::123456789012:role/riskos-connector"
CONNECTION_OVERLAYS: dict[str, dict[str, Any]] = {
    # TLS with a private CA only (no client certificate).
    "kafka-tls-ca": {"kafka": {"bootstrapServers": "kafka.example:9093", "tls": {"enabled": True, "existingSecret": "kafka-ca"}}},
    # mTLS with a cert-manager Secret (ca.crt, tls.crt, tls.key) and an encrypted key.
    "kafka-mtls": {
        "kafka": {
            "tls": {"enabled": True, "existingSecret": "riskos-kafka-client", "clientCertificate": True, "keyPasswordKey": "tls.key.password", "verifyHostname": False}
        }
    },
    # mTLS with Strimzi: the cluster CA from its own Secret, the KafkaUser's certificate.
    "kafka-mtls-strimzi": {
        "kafka": {
            "tls": {
                "enabled": True,
                "caSecret": "my-cluster-cluster-ca-cert",
                "existingSecret": "riskos-kafka-user",
                "clientCertificate": True,
                "certKey": "user.crt",
                "keyKey": "user.key",
            }
        }
    },
    # SCRAM over TLS with Strimzi: the cluster CA, the KafkaUser's password.
    "kafka-scram-tls": {
        "kafka": {
            "tls": {"enabled": True, "existingSecret": "my-cluster-cluster-ca-cert"},
            "sasl": {"mechanism": "SCRAM-SHA-512", "username": "riskos-connector", "existingSecret": "riskos-connector-kafka-user"},
        }
    },
    # PLAIN over TLS with the system trust store (Confluent Cloud API key).
    "kafka-plain": {
        "kafka": {
            "tls": {"enabled": True},
            "sasl": {"mechanism": "PLAIN", "username": "ABCDEFGHIJKLMNOP", "existingSecret": "confluent-api-key", "passwordKey": "api-secret"},
        }
    },
    # OAUTHBEARER with an OIDC token endpoint (Confluent Cloud OAuth, Keycloak).
    "kafka-oidc": {
        "kafka": {
            "tls": {"enabled": True},
            "sasl": {
                "mechanism": "OAUTHBEARER",
                "existingSecret": "riskos-oidc",
                "oidc": {
                    "tokenEndpointUrl": "https://idp.example/realms/kafka/protocol/openid-connect/token",
                    "clientId": "riskos-connector",
                    "scope": "kafka",
                    "extensions": {"logicalCluster": "lkc-1", "identityPoolId": "pool-1"},
                },
            },
        }
    },
    # AWS MSK IAM with IRSA.
    "kafka-msk-iam": {
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": IRSA_ROLE}},
        "kafka": {"bootstrapServers": "b-1.msk.example:9098", "tls": {"enabled": True}, "sasl": {"mechanism": "AWS_MSK_IAM", "awsMskIam": {"region": "eu-west-1"}}},
    },
    "registry-bearer": {"schemaRegistry": {"bearerToken": {"existingSecret": "registry-token"}}},
    "registry-oauth": {
        "schemaRegistry": {
            "url": "https://psrc-1.example",
            "oauth": {
                "tokenEndpointUrl": "https://idp.example/oauth2/token",
                "clientId": "riskos-connector",
                "existingSecret": "registry-oauth",
                "clientSecretKey": "secret",
                "scope": "registry",
                "logicalCluster": "lsrc-1",
                "identityPoolId": "pool-1",
            },
        }
    },
    "registry-mtls": {
        "schemaRegistry": {"url": "https://schema-registry.example:8081", "tls": {"existingSecret": "registry-client", "clientCertificate": True}}
    },
}


def _scenarios() -> dict[str, dict[str, Any]]:
    scenarios: dict[str, dict[str, Any]] = {
        "default": {},
        "production": production_values(),
        "two-endpoints": two_endpoints_values(),
        "two-endpoints-inline-production": TWO_ENDPOINTS_INLINE_PRODUCTION,
        "msk-iam-example": yaml.safe_load(MSK_IAM_VALUES.read_text()),
        "confluent-cloud-example": yaml.safe_load(CONFLUENT_CLOUD_VALUES.read_text()),
    }
    for mode, overlay in AUTH_OVERLAYS.items():
        scenarios[f"secrets-{mode}"] = deep_merge(SECRET_VALUES, overlay)
    scenarios.update(CONNECTION_OVERLAYS)
    return scenarios


SCENARIOS = _scenarios()


def _endpoint_list(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The endpoints a values overlay configures (the chart's default one when none)."""
    return values.get("endpoints") or [{"name": "riskos", "path": "/webhooks/riskos", "auth": {"mode": "bearer"}}]


def _secret_strings(values: dict[str, Any]) -> list[str]:
    """Every credential string in the values: the `secrets` and `protection` sections, every
    endpoint's `secrets` and its required headers' values."""
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
    walk(values.get("protection", {}))
    for item in values.get("endpoints", []):
        walk(item.get("secrets", {}))
        for header in item.get("requiredHeaders", []):
            walk(header.get("values", []))
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
        (endpoints(endpoint(auth={"mode": "digest"})), "/endpoints/0/auth/mode"),
        ({"replicas": 3}, "replicas"),
        (endpoints(endpoint(allowCidrs=["35.199.32.202"], auth={"mode": "none"})), "/endpoints/0/allowCidrs/0"),
        (endpoints(endpoint(path="webhooks", auth={"mode": "none"})), "/endpoints/0/path"),
        ({"spool": {"dir": "relative/spool"}}, "dir"),
        ({"kafka": {"bootstrapServers": ""}}, "bootstrapServers"),
        ({"schemaRegistry": {"compatibility": "SIDEWAYS"}}, "compatibility"),
        ({"schemas": {"encoding": "json"}}, "encoding"),
        ({"log": {"format": "xml"}}, "format"),
        ({"topics": {"replicationFactor": 0}}, "replicationFactor"),
        (endpoints(endpoint(auth={"mode": "bearer"}, secrets={"bearerTokens": ["short"]})), "bearerTokens"),
        ({"networkPolicy": {"egress": {"kafka": {"ports": [70000]}}}}, "ports"),
        # Endpoint names: [a-z0-9][a-z0-9_-]*, at most 63 characters.
        (endpoints(endpoint("Production", auth={"mode": "none"})), "/endpoints/0/name"),
        (endpoints(endpoint("-sandbox", auth={"mode": "none"})), "/endpoints/0/name"),
        (endpoints(endpoint("sand.box", auth={"mode": "none"})), "/endpoints/0/name"),
        (endpoints(endpoint("a" * 64, auth={"mode": "none"})), "/endpoints/0/name"),
        (endpoints(endpoint("", auth={"mode": "none"})), "/endpoints/0/name"),
        (endpoints(endpoint(auth={"mode": "none"}), endpoint("bad name", "/b", auth={"mode": "none"})), "/endpoints/1/name"),
        ({"endpoints": [{"path": "/x", "auth": {"mode": "none"}}]}, "name"),
        ({"endpoints": [{"name": "x", "path": "/x"}]}, "auth"),
        ({"endpoints": []}, "/endpoints"),
        (endpoints(endpoint(topicPrefix="riskos/", auth={"mode": "none"})), "topicPrefix"),
        (endpoints(endpoint(envelopes=["webhook"], auth={"mode": "none"})), "envelopes"),
        (endpoints(endpoint(auth={"mode": "none"}, rateLimitPerIp=-1)), "rateLimitPerIp"),
        # Protection: raw is encrypt, keep or drop; keys are kid:base64(32 bytes).
        (endpoints(endpoint(auth={"mode": "none"}, raw="scramble")), "/endpoints/0/raw"),
        (endpoints(endpoint(auth={"mode": "none"}, raw="Encrypt")), "/endpoints/0/raw"),
        (endpoints(endpoint(auth={"mode": "none"}, protectFields="yes")), "/endpoints/0/protectFields"),
        (endpoints(endpoint(auth={"mode": "none"}, cloudevents="yes")), "/endpoints/0/cloudevents"),
        ({"protection": {"hashKeys": ["k1:c2hvcnQ="]}}, "/protection/hashKeys/0"),
        ({"protection": {"encryptionKeys": ["no key id"]}}, "/protection/encryptionKeys/0"),
        ({"protection": {"keys": []}}, "'keys' not allowed"),
        (endpoints(endpoint(auth={"mode": "none"}, requiredHeaders=[{"name": "X Bad"}])), "requiredHeaders"),
        # Issue 25 item 7: the connector refuses an http:// JWKS URL; so does the schema.
        (
            endpoints(endpoint(auth={"mode": "oauth2", "oauth2": {"jwksUrl": "http://idp.example.com/jwks.json"}})),
            "jwksUrl",
        ),
        (
            endpoints(endpoint(auth={"mode": "standard-webhooks"}, secrets={"standardWebhooksSecrets": ["not-a-whsec-secret"]})),
            "standardWebhooksSecrets",
        ),
        # The single-endpoint keys of the old format are gone.
        ({"http": {"path": "/webhooks/riskos"}}, "'path' not allowed"),
        ({"http": {"allowCidrs": []}}, "'allowCidrs' not allowed"),
        ({"http": {"rateLimitPerIp": 10}}, "'rateLimitPerIp' not allowed"),
        ({"auth": {"mode": "bearer"}}, "'auth' not allowed"),
        ({"topics": {"prefix": "riskos."}}, "'prefix' not allowed"),
        ({"topics": {"quarantine": "riskos.dead"}}, "'quarantine' not allowed"),
        ({"secrets": {"bearerTokens": ["bearer-token-1234567890abcdef"]}}, "'bearerTokens' not allowed"),
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
        # Two Secrets: the generated bearer token, and the generated protection keys.
        ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Secret", "Service", "ServiceAccount"]
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

    def tokens(token: str, **extra: Any) -> dict[str, Any]:
        return {**endpoints(endpoint(auth={"mode": "bearer"}, secrets={"bearerTokens": [token]})), **extra}

    base = annotations(tokens("token-aaaaaaaaaaaaaaaa"))
    same = annotations(tokens("token-aaaaaaaaaaaaaaaa"))
    log_changed = annotations(tokens("token-aaaaaaaaaaaaaaaa", log={"level": "debug"}))
    token_changed = annotations(tokens("token-bbbbbbbbbbbbbbbb"))
    assert re.fullmatch(r"[0-9a-f]{64}", base["checksum/config"])
    assert base == same
    assert log_changed["checksum/config"] != base["checksum/config"]
    assert log_changed["checksum/secret"] == base["checksum/secret"]
    assert token_changed["checksum/secret"] != base["checksum/secret"]
    assert token_changed["checksum/config"] == base["checksum/config"]
    # A required header's value is a credential too; another endpoint's existing Secret as well.
    two = copy.deepcopy(TWO_ENDPOINTS_INLINE_PRODUCTION)
    two_base = annotations(two)
    two["endpoints"][0]["requiredHeaders"][0]["values"] = ["env-key-rotated-9999"]
    assert annotations(two)["checksum/secret"] != two_base["checksum/secret"]
    assert annotations(two)["checksum/config"] == two_base["checksum/config"]
    two["endpoints"][1]["existingSecret"] = "riskos-sandbox-credentials-v2"
    assert annotations(two)["checksum/secret"] != two_base["checksum/secret"]


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


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_config_toml_is_accepted_by_the_connector(scenario: str, tmp_path: Path) -> None:
    """The rendered config.toml is loaded by the real binary (`config check --offline`: load
    and validate, connect to nothing), which refuses unknown keys and bad values, so the chart
    and the connector cannot drift apart; `config show` gives the effective configuration."""
    path = tmp_path / "config.toml"
    values = SCENARIOS[scenario]
    path.write_text(one(render(values), "ConfigMap")["data"]["config.toml"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKOS_")}
    binary = str(connector_binary())
    result = subprocess.run(
        [binary, "config", "check", "--offline", "--config", str(path)],
        capture_output=True, text=True, env=env, check=False,
    )
    assert result.returncode == 0, (
        f"`riskos-connector config check --offline` refused the chart's config.toml ({scenario}): "
        f"{result.stderr.strip()} {result.stdout.strip()}\n(the binary must be built from the current config format)"
    )
    result = subprocess.run(
        [binary, "config", "show", "--config", str(path)],
        capture_output=True, text=True, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    # The connection settings reached the connector as given.
    kafka = values.get("kafka", {})
    assert effective["kafka"]["tls"]["enabled"] is bool(kafka.get("tls", {}).get("enabled"))
    assert effective["kafka"]["sasl"]["mechanism"] == (kafka.get("sasl", {}).get("mechanism") or None)
    expected = [(e["name"], e["path"], e["auth"]["mode"]) for e in _endpoint_list(values)]
    assert [(e["name"], e["path"], e["auth"]["mode"]) for e in effective["endpoints"]] == expected
    assert "auth" not in effective and "path" not in effective["http"]


def test_default_config_values(default_objects: list[dict[str, Any]]) -> None:
    config = config_toml(default_objects)
    assert config["http"] == {"listen": "0.0.0.0:8080", "max_body_bytes": 1048576}
    assert config["delivery"] == {"ack_timeout_ms": 5000}
    assert config["topics"] == {"partitions": 6, "replication_factor": 3, "create": True}
    assert config["schema_registry"]["check_interval_secs"] == 30
    # One endpoint, today's defaults: /webhooks/riskos, riskos. topics, bearer tokens.
    assert config["endpoints"] == [
        {
            "name": "riskos",
            "path": "/webhooks/riskos",
            "topic_prefix": "riskos.",
            "auth": {"mode": "bearer", "bearer": {"tokens_file": f"{SECRETS_DIR}/riskos/bearer_tokens"}},
        }
    ]
    assert "auth" not in config
    assert config["log"] == {"format": "json", "level": "info"}


def test_topic_durability_values_reach_the_config() -> None:
    objects = render(
        {"topics": {"replicationFactor": 5, "minInsyncReplicas": 3, "allowSingleReplicaAcks": True}}
    )
    config = config_toml(objects)
    assert config["topics"]["min_insync_replicas"] == 3
    assert config["topics"]["allow_single_replica_acks"] is True


def test_production_config_values(production_objects: list[dict[str, Any]]) -> None:
    config = config_toml(production_objects)
    (ep,) = config["endpoints"]
    assert ep["allow_cidrs"] == ["35.199.32.202/32", "3.138.161.243/32"]
    assert ep["rate_limit_per_ip"] == 50
    assert config["http"]["trusted_proxies"] == ["10.244.7.0/24"]
    assert config["http"]["max_in_flight"] == 512
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
    assert ep["auth"]["mode"] == "oauth2"
    assert ep["auth"]["oauth2"]["token_endpoint"] == {
        "clients_file": f"{SECRETS_DIR}/riskos/oauth2_clients",
        "signing_secrets_file": f"{SECRETS_DIR}/riskos/oauth2_signing",
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
        }
    )
    config = config_toml(objects)
    assert config["schema_registry"]["compatibility"] == "FULL"
    assert config["schemas"]["encoding"] == "confluent"
    # Unset, they are left to the connector's defaults.
    default = config_toml(render({}))
    assert "compatibility" not in default["schema_registry"]
    assert "encoding" not in default["schemas"]


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


# The connector-wide credential files of the secrets volume that come from Secrets the values
# name, under keys the values name (kafka.sasl, kafka.tls.keyPasswordKey, the registry's
# bearer token and OAuth client secret).
CONNECTION_SECRET_FILES = {
    "kafka_sasl_password",
    "kafka_sasl_oidc_client_secret",
    "kafka_tls_key_password",
    "schema_registry_bearer_token",
    "schema_registry_oauth_client_secret",
}


def _file_keys(node: Any, prefix: str = "") -> dict[str, str]:
    """Every `*_file` key of a parsed config.toml, endpoints named as in the connector's
    messages (`endpoints[sandbox].auth.basic.credentials_file`); the TLS files excluded."""
    out: dict[str, str] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "endpoints" and not prefix:
                for item in value:
                    out.update(_file_keys(item, f"endpoints[{item['name']}]."))
            elif isinstance(value, (dict, list)):
                out.update(_file_keys(value, f"{prefix}{key}."))
            elif key.endswith("_file") and not prefix.startswith("http.tls"):
                out[f"{prefix}{key}"] = value
    elif isinstance(node, list):
        for i, item in enumerate(node):
            out.update(_file_keys(item, f"{prefix[:-1]}[{i}]."))
    return out


def _check_files_resolve(objects: list[dict[str, Any]], secret_data: dict[str, str]) -> dict[str, str]:
    """Every `*_file` of the config is a file of the secrets volume whose key exists: in the
    chart's Secret (`secret_data`), or in an existing Secret under the file's own name; the
    protection keys likewise in the protection volume (the chart's protection Secret or
    protection.existingSecret). Returns config key -> mounted path."""
    files = _file_keys(config_toml(objects))
    protection = {k: files.pop(k) for k in list(files) if k.startswith("protection.")}
    keys_mounted = protection_files(objects)
    for key, path in protection.items():
        assert path.startswith(PROTECTION_DIR + "/"), key
        assert path in keys_mounted, f"{key} -> {path} is not mounted"
        secret_name, secret_key = keys_mounted[path]
        assert secret_key == path.rsplit("/", 1)[1], f"{key}: the protection Secret's key is the file name"
        chart_keys = secret_named(objects, PROTECTION_SECRET)
        if secret_name == PROTECTION_SECRET:
            assert chart_keys is not None and secret_key in chart_keys["data"], key
        else:
            assert chart_keys is None, "keys from an existing Secret, and the chart's protection Secret too"
    assert set(keys_mounted) == set(protection.values())
    # The brokers' and the registry's certificates: their own volumes, every file read.
    for directory, volume in ((KAFKA_TLS_DIR, "kafka-tls"), (REGISTRY_TLS_DIR, "schema-registry-tls")):
        tls = {k: files.pop(k) for k in list(files) if files[k].startswith(directory + "/")}
        tls_mounted = projected_files(objects, volume)
        assert set(tls_mounted) == set(tls.values()), f"{volume}: mounted {sorted(tls_mounted)}, read {sorted(tls.values())}"
        assert not [s for s, _ in tls_mounted.values() if s in (RELEASE, PROTECTION_SECRET)], "certificates come from existing Secrets"
    mounted = secret_files(objects)
    for key, path in files.items():
        assert path.startswith(SECRETS_DIR + "/"), key
        assert path in mounted, f"{key} -> {path} is not mounted"
        secret_name, secret_key = mounted[path]
        if secret_name == RELEASE:
            assert secret_key in secret_data, f"{key} -> {path} -> {secret_key} is not in the chart's Secret"
        elif path.rsplit("/", 1)[1] in CONNECTION_SECRET_FILES:
            # Kafka's and the registry's credentials: a key the values name (checked per
            # scenario in test_secured_cluster_config_and_mounts).
            assert key.startswith(("kafka.", "schema_registry.")), key
        else:
            assert secret_key == path.rsplit("/", 1)[1], f"{key}: an existing Secret's key is the file name"
    # Nothing is mounted that the config does not read (but the env-only Kafka password).
    assert set(mounted) == set(files.values())
    return files


@pytest.mark.parametrize("scenario", [f"secrets-{m}" for m in sorted(AUTH_OVERLAYS)] + ["two-endpoints-inline-production"])
def test_credentials_live_in_the_secret_not_the_configmap(scenario: str) -> None:
    values = SCENARIOS[scenario]
    objects = render(values)
    configmap_text = yaml.safe_dump(one(objects, "ConfigMap"))
    secret = chart_secret(objects)
    secret_values = {
        (s["metadata"]["name"], k): base64.b64decode(v).decode()
        for s in by_kind(objects, "Secret")
        for k, v in s["data"].items()
    }
    credentials = _secret_strings(values)
    assert credentials
    for credential in credentials:
        assert credential not in configmap_text, f"a credential leaked into the ConfigMap ({scenario})"
        assert any(credential in v for v in secret_values.values()), credential
    # Nothing else in the rendered manifests carries a credential either, except the Secret.
    for obj in objects:
        if obj["kind"] != "Secret":
            text = yaml.safe_dump(obj)
            assert not [c for c in credentials if c in text], obj["kind"]

    # Every *_file key points at a key of a mounted Secret, an endpoint's under its own name.
    files = _check_files_resolve(objects, secret["data"])
    assert files, "no *_file keys rendered"
    for key, path in files.items():
        if key.startswith("endpoints["):
            name = key[len("endpoints[") : key.index("]")]
            assert path.startswith(f"{SECRETS_DIR}/{name}/"), key
    mount = next(m for m in container(objects)["volumeMounts"] if m["name"] == "secrets")
    assert mount["mountPath"] == SECRETS_DIR and mount["readOnly"] is True

    # The Kafka SASL password arrives as an env var from the Secret.
    if scenario.startswith("secrets-"):
        env = {e["name"]: e for e in container(objects)["env"]}
        ref = env["RISKOS_KAFKA__LIBRDKAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret["metadata"]["name"], "key": "kafka_sasl_password"}
        assert "value" not in env["RISKOS_KAFKA__LIBRDKAFKA__SASL_PASSWORD"]


def test_list_credentials_are_written_one_per_line() -> None:
    objects = render(SCENARIOS["secrets-bearer"])
    data = chart_secret(objects)["data"]
    tokens = base64.b64decode(data["riskos.bearer_tokens"]).decode().splitlines()
    assert tokens == AUTH_OVERLAYS["bearer"]["endpoints"][0]["secrets"]["bearerTokens"]
    objects = render(SCENARIOS["secrets-oauth2"])
    clients = base64.b64decode(chart_secret(objects)["data"]["riskos.oauth2_clients"]).decode()
    assert clients == "vendor:oauth2-client-secret-77aa"
    objects = render(TWO_ENDPOINTS_INLINE_PRODUCTION)
    values = base64.b64decode(chart_secret(objects)["data"]["production.required_header_0"]).decode()
    assert values.splitlines() == ["env-key-production-4242", "env-key-next-4343"]


def test_a_bearer_token_is_generated_when_none_is_given(default_objects: list[dict[str, Any]]) -> None:
    secret = chart_secret(default_objects)
    assert set(secret["data"]) == {"riskos.bearer_tokens"}
    token = base64.b64decode(secret["data"]["riskos.bearer_tokens"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{48}", token)
    assert token not in yaml.safe_dump(one(default_objects, "ConfigMap"))
    assert secret_files(default_objects) == {f"{SECRETS_DIR}/riskos/bearer_tokens": (RELEASE, "riskos.bearer_tokens")}
    notes = next(v for k, v in render_files({}).items() if k.endswith("NOTES.txt"))
    assert "riskos\\.bearer_tokens" in notes


def test_a_token_is_generated_per_bearer_endpoint_without_tokens() -> None:
    objects = render(
        endpoints(
            endpoint("production", "/webhooks/riskos", auth={"mode": "bearer"}),
            endpoint("sandbox", "/webhooks/riskos-sandbox", auth={"mode": "bearer"}),
            endpoint("given", "/webhooks/given", auth={"mode": "bearer"}, secrets={"bearerTokens": ["given-token-0123456789"]}),
        )
    )
    data = {k: base64.b64decode(v).decode() for k, v in chart_secret(objects)["data"].items()}
    assert set(data) == {"production.bearer_tokens", "sandbox.bearer_tokens", "given.bearer_tokens"}
    assert data["production.bearer_tokens"] != data["sandbox.bearer_tokens"]
    assert data["given.bearer_tokens"] == "given-token-0123456789"


def test_existing_secret_is_used_and_none_is_created(production_objects: list[dict[str, Any]]) -> None:
    assert by_kind(production_objects, "Secret") == []
    # The connector-wide and the endpoint's files both come from the existing Secret.
    assert secret_files(production_objects) == {
        f"{SECRETS_DIR}/schema_registry_password": ("riskos-connector-credentials", "schema_registry_password"),
        f"{SECRETS_DIR}/riskos/oauth2_clients": ("riskos-connector-credentials", "oauth2_clients"),
        f"{SECRETS_DIR}/riskos/oauth2_signing": ("riskos-connector-credentials", "oauth2_signing"),
    }
    _check_files_resolve(production_objects, {})
    env = {e["name"]: e for e in container(production_objects)["env"]}
    ref = env["RISKOS_KAFKA__LIBRDKAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "riskos-connector-credentials"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"kafka": {"librdkafka": {"sasl.password": "hunter2-hunter2"}}}, "sasl.password"),
        ({"kafka": {"librdkafka": {"sasl_password": "hunter2-hunter2"}}}, "sasl_password"),
        ({"kafka": {"librdkafka": {"ssl.key.password": "hunter2-hunter2"}}}, "ssl.key.password"),
        (endpoints(endpoint(auth={"mode": "basic"})), "endpoints[riskos].secrets.basicCredentials"),
        (endpoints(endpoint(auth={"mode": "hmac"})), "endpoints[riskos].secrets.hmacSecrets"),
        (endpoints(endpoint(auth={"mode": "oauth2"})), "endpoints[riskos].auth.oauth2.jwksUrl"),
        (
            endpoints(endpoint(auth={"mode": "oauth2", "oauth2": {"tokenEndpoint": {"enabled": True}}})),
            "endpoints[riskos].secrets.oauth2Clients",
        ),
        (endpoints(endpoint(auth={"mode": "standard-webhooks"})), "endpoints[riskos].secrets.standardWebhooksSecrets"),
        (
            endpoints(endpoint(auth={"mode": "standard-webhooks", "standardWebhooks": {"signatures": "asymmetric"}})),
            "standardWebhooksPublicKeys",
        ),
        (
            endpoints(endpoint(auth={"mode": "none"}, requiredHeaders=[{"name": "X-Key"}])),
            "endpoints[riskos].requiredHeaders[0]",
        ),
        (
            endpoints(endpoint(auth={"mode": "bearer"}, existingSecret="s", secrets={"bearerTokens": ["bearer-token-1234567890"]})),
            "endpoints[riskos].existingSecret is set",
        ),
        (
            endpoints(endpoint(auth={"mode": "none"}, existingSecret="s", requiredHeaders=[{"name": "X-Key", "values": ["v"]}])),
            "required_header_0",
        ),
        ({"schemaRegistry": {"username": "u"}}, "schemaRegistryPassword"),
        ({"schemaRegistry": {"url": ""}}, "schemaRegistry.url"),
        ({"kafka": {"saslPasswordFromSecret": True}}, "kafkaSaslPassword"),
        ({"http": {"tls": {"enabled": True}}}, "http.tls.secretName"),
        ({"networkPolicy": {"enabled": True}}, "networkPolicy.egress.kafka"),
        (
            endpoints(endpoint(auth={"mode": "none"}, maxBodyBytesInFlight=1024)),
            "endpoints[riskos].maxBodyBytesInFlight",
        ),
        # Explicit shares over the listener's total (set, or the connector's default 4096).
        (
            {
                **endpoints(endpoint("a", "/a", auth={"mode": "none"}, maxInFlight=60), endpoint("b", "/b", auth={"mode": "none"}, maxInFlight=50)),
                "http": {"maxInFlight": 100},
            },
            "endpoints[].maxInFlight add up to 110, more than http.maxInFlight (100)",
        ),
        (
            endpoints(endpoint(auth={"mode": "none"}, maxInFlight=5000)),
            "endpoints[].maxInFlight add up to 5000, more than http.maxInFlight (4096)",
        ),
    ],
)
def test_unsafe_or_incomplete_values_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError) as error:
        render(values)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "values, message",
    [
        # The same name twice.
        (
            endpoints(
                endpoint("production", "/webhooks/riskos", auth={"mode": "none"}),
                endpoint("production", "/webhooks/riskos-sandbox", auth={"mode": "none"}),
            ),
            'the name "production" is used by endpoints[0] and endpoints[1]',
        ),
        # The same path twice.
        (
            endpoints(
                endpoint("production", "/webhooks/riskos", auth={"mode": "none"}),
                endpoint("sandbox", "/webhooks/riskos", auth={"mode": "none"}),
            ),
            'endpoints[sandbox].path "/webhooks/riskos" is already taken by endpoints[production].path',
        ),
        # A path that is another endpoint's token endpoint.
        (
            endpoints(
                endpoint(
                    "production",
                    auth={"mode": "oauth2", "oauth2": {"tokenEndpoint": {"enabled": True}}},
                    secrets={"oauth2Clients": [{"clientId": "vendor", "clientSecret": "oauth2-client-secret-77aa"}]},
                ),
                endpoint("sandbox", "/oauth2/token", auth={"mode": "none"}),
            ),
            'endpoints[sandbox].path "/oauth2/token" is already taken by endpoints[production].auth.oauth2.tokenEndpoint.path',
        ),
        # Two token endpoints on the default path.
        (
            endpoints(
                *[
                    endpoint(
                        name,
                        f"/webhooks/{name}",
                        auth={"mode": "oauth2", "oauth2": {"tokenEndpoint": {"enabled": True}}},
                        secrets={"oauth2Clients": [{"clientId": "vendor", "clientSecret": "oauth2-client-secret-77aa"}]},
                    )
                    for name in ("production", "sandbox")
                ]
            ),
            "endpoints[sandbox].auth.oauth2.tokenEndpoint.path",
        ),
        # The connector's own paths.
        (endpoints(endpoint(path="/metrics", auth={"mode": "none"})), "is served by the connector itself"),
        (endpoints(endpoint(path="/healthz", auth={"mode": "none"})), "is served by the connector itself"),
        (endpoints(endpoint(path="/openapi.json", auth={"mode": "none"})), "is served by the connector itself"),
    ],
)
def test_duplicate_or_reserved_endpoint_names_and_paths_fail(values: dict[str, Any], message: str) -> None:
    # JSON schema cannot say "unique by name": the schema accepts these, the templates refuse them.
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values)
    with pytest.raises(helm.HelmError) as error:
        render(values)
    assert message in str(error.value)


def test_no_secret_volume_when_nothing_is_secret() -> None:
    # No credential and protection off: no Secret, no secret volume, no keys.
    unprotected = endpoints(endpoint(auth={"mode": "none"}, protectFields=False, raw="keep"))
    objects = render(unprotected)
    assert by_kind(objects, "Secret") == []
    pod = workload(objects)["spec"]["template"]["spec"]
    assert not {"secrets", "protection"} & {v["name"] for v in pod["volumes"]}
    assert not {"secrets", "protection"} & {m["name"] for m in container(objects)["volumeMounts"]}
    assert config_toml(objects)["endpoints"][0]["auth"] == {"mode": "none"}
    assert "protection" not in config_toml(objects)
    notes = next(v for k, v in render_files(unprotected).items() if k.endswith("NOTES.txt"))
    assert "WARNING: auth.mode=none" in notes
    assert "NOTE: endpoint riskos stores personal data in clear" in notes
    # No credential but protection on (the default): only the protection keys are secret.
    objects = render(endpoints(endpoint(auth={"mode": "none"})))
    assert [s["metadata"]["name"] for s in by_kind(objects, "Secret")] == [PROTECTION_SECRET]
    assert secret_files(objects) == {}
    assert set(protection_files(objects)) == {f"{PROTECTION_DIR}/hash_keys", f"{PROTECTION_DIR}/encryption_keys"}


# --------------------------------------------------------------------------------------------
# Personal data protection keys
# --------------------------------------------------------------------------------------------

# The chart's only `lookup`, replaced below to render as `helm upgrade` does in a cluster.
LOOKUP_LINE = '{{- $found := lookup "v1" "Secret" .namespace .name }}'


def _render_in_cluster(values: dict[str, Any], cluster: dict[str, dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    """The objects `helm upgrade` renders in a cluster whose namespace holds the Secrets
    `cluster` ({name: Secret object}): a copy of the chart whose lookup answers from it."""
    import shutil

    chart = tmp_path / "chart"
    shutil.rmtree(chart, ignore_errors=True)
    shutil.copytree(CHART, chart)
    helpers = chart / "templates" / "_helpers.tpl"
    text = helpers.read_text()
    assert text.count(LOOKUP_LINE) == 1, "the chart's lookup line moved: update LOOKUP_LINE"
    state = base64.b64encode(json.dumps(cluster).encode()).decode()
    helpers.write_text(text.replace(LOOKUP_LINE, f'{{{{- $found := dig .name (dict) (fromJson (b64dec "{state}")) }}}}'))
    with helm.Chart.load(str(chart)) as loaded:
        rendered = loaded.render(values, name=RELEASE, namespace=NAMESPACE, is_upgrade=True)
    return [
        doc
        for path, text in rendered.items()
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def _keys(objects: list[dict[str, Any]]) -> dict[str, str]:
    secret = secret_named(objects, PROTECTION_SECRET)
    assert secret is not None, "no protection Secret rendered"
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_protection_keys_are_generated_mounted_and_rendered(default_objects: list[dict[str, Any]]) -> None:
    keys = _keys(default_objects)
    assert set(keys) == {"hash_keys", "encryption_keys"}
    for line in keys.values():
        assert KEY_LINE.fullmatch(line), "one kid:base64 line"
        assert len(base64.b64decode(line.split(":", 1)[1])) == 32
        # A fresh id per generated key (never `k1` again): a key generated anew under an old id
        # would be taken for it.
        assert re.fullmatch(r"k[a-z0-9]{8}", line.split(":", 1)[0]), line.split(":", 1)[0]
    assert keys["hash_keys"] != keys["encryption_keys"]
    kid = lambda line: line.split(":", 1)[0]  # noqa: E731
    assert kid(keys["hash_keys"]) != kid(keys["encryption_keys"])
    secret = secret_named(default_objects, PROTECTION_SECRET)
    # Kept by `helm uninstall`: losing the keys loses every encrypted record.
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # Mounted read-only from that Secret, and the config points at the files.
    assert protection_files(default_objects) == {
        f"{PROTECTION_DIR}/hash_keys": (PROTECTION_SECRET, "hash_keys"),
        f"{PROTECTION_DIR}/encryption_keys": (PROTECTION_SECRET, "encryption_keys"),
    }
    assert config_toml(default_objects)["protection"] == {
        "hash_keys_file": f"{PROTECTION_DIR}/hash_keys",
        "encryption_keys_file": f"{PROTECTION_DIR}/encryption_keys",
    }
    # Only the Secret carries them.
    for obj in default_objects:
        if obj["kind"] != "Secret":
            text = yaml.safe_dump(obj)
            assert not [k for k in keys.values() if k.split(":", 1)[1] in text], obj["kind"]
    # Each render outside a cluster generates new ones (no lookup), under new ids.
    again = _keys(render({"log": {"level": "debug"}}))
    assert again != keys
    assert {kid(line) for line in again.values()}.isdisjoint(kid(line) for line in keys.values())
    notes = next(v for k, v in render_files({}).items() if k.endswith("NOTES.txt"))
    assert f"get secret {PROTECTION_SECRET} -o yaml" in notes
    assert "losing these keys makes every encrypted field and body unreadable" in notes


def test_generated_keys_are_kept_across_upgrades(tmp_path: Path) -> None:
    installed = render({})
    cluster = {s["metadata"]["name"]: {"data": s["data"]} for s in by_kind(installed, "Secret")}
    assert set(cluster) == {RELEASE, PROTECTION_SECRET}
    upgraded = _render_in_cluster({"log": {"level": "debug"}}, cluster, tmp_path)
    assert _keys(upgraded) == _keys(installed)
    # The generated bearer token is kept the same way.
    assert chart_secret(upgraded)["data"] == chart_secret(installed)["data"]
    # A kind given later replaces its generated key; the other one is still kept.
    given = _render_in_cluster(
        {"protection": {"hashKeys": [HASH_KEY, _keys(installed)["hash_keys"]]}}, cluster, tmp_path
    )
    assert _keys(given)["hash_keys"].splitlines() == [HASH_KEY, _keys(installed)["hash_keys"]]
    assert _keys(given)["encryption_keys"] == _keys(installed)["encryption_keys"]
    # An empty cluster (a first install) generates: the lookup is what keeps them.
    assert _keys(_render_in_cluster({}, {}, tmp_path)) != _keys(installed)


def test_the_connector_accepts_the_generated_keys(default_objects: list[dict[str, Any]], tmp_path: Path) -> None:
    """The real binary protects a fixture with the chart's generated keys and opens it again."""
    config = tmp_path / "config.toml"
    config.write_text(one(default_objects, "ConfigMap")["data"]["config.toml"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKOS_")}
    for file, line in _keys(default_objects).items():
        (tmp_path / file).write_text(line + "\n")
        env[f"RISKOS_PROTECTION__{file.upper()}_FILE"] = str(tmp_path / file)
    env["RISKOS_SCHEMAS__DIR"] = str(SCHEMAS)
    fixture = REPO / "tests" / "fixtures" / "riskos.case_closure.match.json"
    result = subprocess.run(
        [str(connector_binary()), "validate", "--config", str(config), "--reveal", str(fixture)],
        capture_output=True, text=True, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert line["protected"] is True
    keys = _keys(default_objects)
    assert line["record"]["raw"].startswith(f"e2.{keys['encryption_keys'].split(':')[0]}.")
    assert line["record"]["data"]["eval_id"].startswith(f"h2.{keys['hash_keys'].split(':')[0]}.")
    assert line["revealed"]["raw"] == fixture.read_text()


def test_inline_protection_keys_are_written_one_per_line() -> None:
    rotated = "test-h0:QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="
    objects = render({"protection": {"hashKeys": [HASH_KEY, rotated], "encryptionKeys": [ENCRYPTION_KEY]}})
    assert _keys(objects) == {"hash_keys": f"{HASH_KEY}\n{rotated}", "encryption_keys": ENCRYPTION_KEY}
    configmap = yaml.safe_dump(one(objects, "ConfigMap"))
    assert HASH_KEY.split(":")[1] not in configmap and ENCRYPTION_KEY.split(":")[1] not in configmap
    notes = next(v for k, v in render_files({"protection": {"hashKeys": [HASH_KEY], "encryptionKeys": [ENCRYPTION_KEY]}}).items() if k.endswith("NOTES.txt"))
    assert "Generated by the chart" not in notes


def test_protection_keys_from_an_existing_secret(production_objects: list[dict[str, Any]]) -> None:
    assert secret_named(production_objects, PROTECTION_SECRET) is None
    assert protection_files(production_objects) == {
        f"{PROTECTION_DIR}/hash_keys": ("riskos-connector-protection-keys", "hash_keys"),
        f"{PROTECTION_DIR}/encryption_keys": ("riskos-connector-protection-keys", "encryption_keys"),
    }
    config = config_toml(production_objects)
    assert config["protection"]["hash_keys_file"] == f"{PROTECTION_DIR}/hash_keys"
    (ep,) = config["endpoints"]
    assert (ep["protect_fields"], ep["raw"]) == (True, "encrypt")


def test_per_endpoint_protection_settings() -> None:
    values = endpoints(
        endpoint("a", "/a", auth={"mode": "none"}, protectFields=False, raw="keep"),
        endpoint("b", "/b", auth={"mode": "none"}, raw="drop"),
        endpoint("c", "/c", auth={"mode": "none"}),
    )
    objects = render(values)
    a, b, c = config_toml(objects)["endpoints"]
    assert (a["protect_fields"], a["raw"]) == (False, "keep")
    assert "protect_fields" not in b and b["raw"] == "drop"
    assert "protect_fields" not in c and "raw" not in c  # the connector's defaults
    # b and c protect: keys are rendered and mounted.
    assert "protection" in config_toml(objects) and protection_files(objects)
    notes = next(v for k, v in render_files(values).items() if k.endswith("NOTES.txt"))
    assert "NOTE: endpoint a stores personal data in clear" in notes
    assert "endpoint b stores" not in notes and "endpoint c stores" not in notes
    # Keys given with every endpoint off are still rendered (for the tools).
    off = endpoints(endpoint(auth={"mode": "none"}, protectFields=False, raw="keep"))
    objects = render({**off, "protection": {"existingSecret": "keys"}})
    assert config_toml(objects)["protection"]["encryption_keys_file"] == f"{PROTECTION_DIR}/encryption_keys"


def test_cloudevents_is_opt_in_per_endpoint() -> None:
    values = endpoints(
        endpoint("a", "/a", auth={"mode": "none"}, cloudevents=True),
        endpoint("b", "/b", auth={"mode": "none"}, cloudevents=False),
        endpoint("c", "/c", auth={"mode": "none"}),
    )
    a, b, c = config_toml(render(values))["endpoints"]
    assert a["cloudevents"] is True
    assert "cloudevents" not in b and "cloudevents" not in c  # the connector's default: off
    # The default values leave it off.
    (default,) = config_toml(render({}))["endpoints"]
    assert "cloudevents" not in default


def test_protection_values_roll_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        return workload(render(values))["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]

    base = {"protection": {"hashKeys": [HASH_KEY], "encryptionKeys": [ENCRYPTION_KEY]}}
    assert checksum(base) == checksum(copy.deepcopy(base))
    rotated = copy.deepcopy(base)
    rotated["protection"]["encryptionKeys"].insert(0, "test-e2:QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=")
    assert checksum(rotated) != checksum(base)
    assert checksum({"protection": {"existingSecret": "keys-v2"}}) != checksum({"protection": {"existingSecret": "keys-v1"}})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"protection": {"existingSecret": "keys", "hashKeys": [HASH_KEY]}}, "protection.existingSecret is set: remove protection.hashKeys"),
        ({"protection": {"existingSecret": "keys", "encryptionKeys": [ENCRYPTION_KEY]}}, "remove protection.encryptionKeys"),
        ({"protection": {"hashKeys": [HASH_KEY, HASH_KEY]}}, 'protection.hashKeys: the key id "test-h1" is listed twice'),
    ],
)
def test_bad_protection_values_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError) as error:
        render(values)
    assert message in str(error.value)


# --------------------------------------------------------------------------------------------
# Two endpoints
# --------------------------------------------------------------------------------------------


def test_two_endpoints_in_the_config(two_endpoint_scenario: str) -> None:
    values = SCENARIOS[two_endpoint_scenario]
    config = config_toml(render(values))
    by_name = {e["name"]: e for e in config["endpoints"]}
    assert [e["name"] for e in config["endpoints"]] == ["production", "sandbox"]
    production, sandbox = by_name["production"], by_name["sandbox"]
    assert (production["path"], production["topic_prefix"]) == ("/webhooks/riskos", "riskos.")
    assert (sandbox["path"], sandbox["topic_prefix"]) == ("/webhooks/riskos-sandbox", "riskos.sandbox.")
    assert production["allow_cidrs"] == ["35.199.32.202/32", "3.138.161.243/32"]
    assert sandbox["allow_cidrs"] == ["35.230.191.253/32"]
    assert production["envelopes"] == ["event", "request_token"]
    assert production["auth"] == {"mode": "bearer", "bearer": {"tokens_file": f"{SECRETS_DIR}/production/bearer_tokens"}}
    assert sandbox["auth"] == {
        "mode": "basic",
        "basic": {"credentials_file": f"{SECRETS_DIR}/sandbox/basic_credentials"},
    }
    assert production["required_headers"] == [
        {"name": "X-RiskOS-Environment-Key", "values_file": f"{SECRETS_DIR}/production/required_header_0"}
    ]
    assert "required_headers" not in sandbox
    # The connector-wide sections carry none of the per-endpoint keys.
    assert not {"path", "allow_cidrs", "rate_limit_per_ip"} & set(config["http"])
    assert not {"prefix", "quarantine"} & set(config["topics"])


@pytest.fixture(params=["two-endpoints", "two-endpoints-inline-production"])
def two_endpoint_scenario(request: pytest.FixtureRequest) -> str:
    return request.param


def test_two_endpoints_limits_and_shares() -> None:
    config = config_toml(render(TWO_ENDPOINTS_INLINE_PRODUCTION))
    production, sandbox = config["endpoints"]
    assert (production["rate_limit_per_ip"], production["max_in_flight"]) == (1000, 128)
    assert "max_body_bytes_in_flight" not in production
    assert (sandbox["rate_limit_per_ip"], sandbox["max_body_bytes_in_flight"]) == (0, 16777216)
    assert "max_in_flight" not in sandbox
    # Totals stay on the listener, only when set.
    totals = config_toml(render({"http": {"maxInFlight": 300, "maxBodyBytesInFlight": 134217728}}))["http"]
    assert (totals["max_in_flight"], totals["max_body_bytes_in_flight"]) == (300, 134217728)
    assert "max_in_flight" not in config["http"]


def test_two_endpoints_secrets_are_mounted_per_endpoint() -> None:
    # The example: Production from an existing Secret, Sandbox inline in the chart's Secret.
    objects = render(two_endpoints_values())
    secret = chart_secret(objects)
    assert set(secret["data"]) == {"sandbox.basic_credentials"}
    assert secret_files(objects) == {
        f"{SECRETS_DIR}/production/bearer_tokens": ("riskos-connector-production", "bearer_tokens"),
        f"{SECRETS_DIR}/production/required_header_0": ("riskos-connector-production", "required_header_0"),
        f"{SECRETS_DIR}/sandbox/basic_credentials": (RELEASE, "sandbox.basic_credentials"),
    }
    _check_files_resolve(objects, secret["data"])
    # The other way round: Production inline, Sandbox from an existing Secret.
    objects = render(TWO_ENDPOINTS_INLINE_PRODUCTION)
    secret = chart_secret(objects)
    assert set(secret["data"]) == {"production.bearer_tokens", "production.required_header_0"}
    assert secret_files(objects) == {
        f"{SECRETS_DIR}/production/bearer_tokens": (RELEASE, "production.bearer_tokens"),
        f"{SECRETS_DIR}/production/required_header_0": (RELEASE, "production.required_header_0"),
        f"{SECRETS_DIR}/sandbox/basic_credentials": ("riskos-sandbox-credentials", "basic_credentials"),
    }
    _check_files_resolve(objects, secret["data"])
    # One volume, one mount: no nested mounts inside a read-only Secret volume.
    pod = workload(objects)["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]].count("secrets") == 1
    mounts = [m["mountPath"] for m in container(objects)["volumeMounts"]]
    assert [m for m in mounts if m.startswith(SECRETS_DIR)] == [SECRETS_DIR]


def test_two_endpoints_notes_list_every_endpoint() -> None:
    notes = next(v for k, v in render_files(two_endpoints_values()).items() if k.endswith("NOTES.txt"))
    assert "production: /webhooks/riskos  (auth.mode = bearer" in notes
    assert "sandbox: /webhooks/riskos-sandbox  (auth.mode = basic" in notes
    assert "https://webhooks.example.com/webhooks/riskos-sandbox" in notes
    assert "A bearer token was generated" not in notes  # no token was generated


def test_standard_webhooks_config() -> None:
    objects = render(SCENARIOS["secrets-standard-webhooks"])
    (ep,) = config_toml(objects)["endpoints"]
    assert ep["auth"] == {
        "mode": "standard-webhooks",
        "standard_webhooks": {
            "secrets_file": f"{SECRETS_DIR}/riskos/standard_webhooks_secrets",
            "public_keys_file": f"{SECRETS_DIR}/riskos/standard_webhooks_public_keys",
            "tolerance_secs": 120,
        },
    }
    # Symmetric only (the default): no public keys file.
    objects = render(
        endpoints(endpoint(auth={"mode": "standard-webhooks"}, secrets={"standardWebhooksSecrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}))
    )
    (ep,) = config_toml(objects)["endpoints"]
    assert ep["auth"]["standard_webhooks"] == {
        "secrets_file": f"{SECRETS_DIR}/riskos/standard_webhooks_secrets",
        "tolerance_secs": 300,
    }


def test_an_endpoint_item_needs_only_name_path_and_auth() -> None:
    # A values list replaces the default one whole: an item without the optional keys renders
    # with the connector's defaults (strict lint: no missing-key errors).
    values = endpoints(endpoint("minimal", "/hook", auth={"mode": "bearer"}))
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    (ep,) = config_toml(render(values))["endpoints"]
    assert ep == {"name": "minimal", "path": "/hook", "auth": {"mode": "bearer", "bearer": {"tokens_file": f"{SECRETS_DIR}/minimal/bearer_tokens"}}}


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


# The ingress controller pods' addresses; an Ingress needs them (see the refusal test below).
BEHIND_INGRESS = {"http": {"trustedProxies": ["10.244.7.0/24"]}}


def test_ingress_tls_secret_defaults_to_the_release_name() -> None:
    ingress = one(render({**BEHIND_INGRESS, "ingress": {"enabled": True}}), "Ingress")
    assert ingress["spec"]["tls"][0]["secretName"] == f"{RELEASE}-tls"
    assert [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]] == ["/webhooks/riskos"]


def test_ingress_routes_every_endpoint(two_endpoint_scenario: str) -> None:
    values = deep_merge(SCENARIOS[two_endpoint_scenario], {**BEHIND_INGRESS, "ingress": {"enabled": True, "hosts": ["a.example.com", "b.example.com"]}})
    ingress = one(render(values), "Ingress")
    for rule in ingress["spec"]["rules"]:
        paths = [(p["path"], p["pathType"]) for p in rule["http"]["paths"]]
        assert paths == [("/webhooks/riskos", "Exact"), ("/webhooks/riskos-sandbox", "Exact")]
        for p in rule["http"]["paths"]:
            assert p["backend"]["service"] == {"name": RELEASE, "port": {"name": "http"}}


def test_ingress_routes_token_endpoints_and_extra_paths_once() -> None:
    values = endpoints(
        endpoint("production", auth={"mode": "bearer"}),
        endpoint(
            "partner",
            "/webhooks/partner",
            auth={"mode": "oauth2", "oauth2": {"tokenEndpoint": {"enabled": True, "path": "/oauth2/partner/token"}}},
            secrets={"oauth2Clients": [{"clientId": "partner", "clientSecret": "oauth2-client-secret-77aa"}]},
        ),
    )
    values.update(BEHIND_INGRESS)
    values["ingress"] = {
        "enabled": True,
        "extraPaths": [{"path": "/oauth2/partner/token"}, {"path": "/status", "pathType": "Prefix"}],
    }
    objects = render(values)
    paths = [(p["path"], p["pathType"]) for p in one(objects, "Ingress")["spec"]["rules"][0]["http"]["paths"]]
    assert paths == [
        ("/webhooks/riskos", "Exact"),
        ("/webhooks/partner", "Exact"),
        ("/oauth2/partner/token", "Exact"),
        ("/status", "Prefix"),
    ]
    token_endpoint = config_toml(objects)["endpoints"][1]["auth"]["oauth2"]["token_endpoint"]
    assert token_endpoint["path"] == "/oauth2/partner/token"
    assert token_endpoint["clients_file"] == f"{SECRETS_DIR}/partner/oauth2_clients"


def test_an_ingress_without_trusted_proxies_is_refused_naming_the_value() -> None:
    # Behind the controller every caller would share its address: one stranger's failures
    # would count against the vendor.
    with pytest.raises(helm.HelmError) as error:
        render({"ingress": {"enabled": True}})
    assert "http.trustedProxies" in str(error.value)
    assert "networkPolicy.enabled" in str(error.value)
    # Without an Ingress (a LoadBalancer Service, port-forward) the peer is the client.
    assert not [o for o in render({}) if o["kind"] == "Ingress"]


def test_the_notes_warn_when_trusted_proxies_are_reachable_without_the_network_policy() -> None:
    def notes(values: dict[str, Any]) -> str:
        return next(v for k, v in render_files(values).items() if k.endswith("NOTES.txt"))

    unguarded = notes({**BEHIND_INGRESS, "ingress": {"enabled": True}})
    assert "networkPolicy.enabled=false lets every pod of the cluster reach the connector" in unguarded
    assert "10.244.7.0/24" in unguarded
    guarded = deep_merge(
        BEHIND_INGRESS,
        {"ingress": {"enabled": True}, "networkPolicy": {"enabled": True, "egress": {"kafka": {"cidrs": ["10.20.0.0/16"]}, "schemaRegistry": {"cidrs": ["10.30.0.0/16"]}}}},
    )
    assert "networkPolicy.enabled=false" not in notes(guarded)


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
    "grafanaDashboard.labels",
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
    assert "examples/two-endpoints-values.yaml" in readme


def test_readme_documents_the_endpoint_keys() -> None:
    readme = (CHART / "README.md").read_text()
    table_keys = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    (item,) = defaults["endpoints"]
    missing = [p for p in _value_paths(item) if p not in table_keys]
    assert not missing, f"endpoints[] keys not documented in README.md: {missing}"
    # Every file an endpoint can need is named in the secrets table.
    for file in ("basic_credentials", "bearer_tokens", "oauth2_clients", "oauth2_signing", "hmac_secrets",
                 "standard_webhooks_secrets", "standard_webhooks_public_keys", "required_header_<i>"):
        assert f"| `{file}` |" in readme, file


def test_two_endpoints_example_matches_the_vendor_setup() -> None:
    values = two_endpoints_values()
    production, sandbox = values["endpoints"]
    assert (production["name"], production["auth"]["mode"]) == ("production", "bearer")
    assert production["requiredHeaders"] == [{"name": "X-RiskOS-Environment-Key"}]
    assert production["existingSecret"] and "secrets" not in production
    assert production["allowCidrs"] == ["35.199.32.202/32", "3.138.161.243/32"]
    assert (sandbox["name"], sandbox["auth"]["mode"]) == ("sandbox", "basic")
    assert sandbox["secrets"]["basicCredentials"] and "existingSecret" not in sandbox
    assert sandbox["allowCidrs"] == ["35.230.191.253/32"]
    assert sandbox["topicPrefix"] == "riskos.sandbox."


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
        ("endpoints", 0, "auth", "oauth2", "tokenEndpoint", "enabled"),
    ):
        node: Any = values
        for key in toggle:
            node = node[key]
        assert node is True, ".".join(map(str, toggle))
    assert values["secrets"]["existingSecret"] and values["endpoints"][0]["existingSecret"]
    assert values["endpoints"][0]["allowCidrs"] and values["schemaRegistry"]["username"]
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


# --------------------------------------------------------------------------------------------
# Connecting to a secured cluster (issue 27): Kafka TLS and SASL, registry auth and TLS
# --------------------------------------------------------------------------------------------

# Per scenario: the [kafka] keys beyond bootstrap_servers, the [schema_registry] keys beyond
# url/timeout/check interval (None: the section is not checked), and every file the
# connection adds to the pod, path -> (Secret, key).
SECURED = {
    "kafka-tls-ca": (
        {"tls": {"enabled": True, "ca_file": f"{KAFKA_TLS_DIR}/ca.crt"}},
        None,
        {f"{KAFKA_TLS_DIR}/ca.crt": ("kafka-ca", "ca.crt")},
    ),
    "kafka-mtls": (
        {
            "tls": {
                "enabled": True,
                "ca_file": f"{KAFKA_TLS_DIR}/ca.crt",
                "cert_file": f"{KAFKA_TLS_DIR}/tls.crt",
                "key_file": f"{KAFKA_TLS_DIR}/tls.key",
                "key_password_file": f"{SECRETS_DIR}/kafka_tls_key_password",
                "verify_hostname": False,
            }
        },
        None,
        {
            f"{KAFKA_TLS_DIR}/ca.crt": ("riskos-kafka-client", "ca.crt"),
            f"{KAFKA_TLS_DIR}/tls.crt": ("riskos-kafka-client", "tls.crt"),
            f"{KAFKA_TLS_DIR}/tls.key": ("riskos-kafka-client", "tls.key"),
            f"{SECRETS_DIR}/kafka_tls_key_password": ("riskos-kafka-client", "tls.key.password"),
        },
    ),
    "kafka-mtls-strimzi": (
        {
            "tls": {
                "enabled": True,
                "ca_file": f"{KAFKA_TLS_DIR}/ca.crt",
                "cert_file": f"{KAFKA_TLS_DIR}/tls.crt",
                "key_file": f"{KAFKA_TLS_DIR}/tls.key",
            }
        },
        None,
        {
            f"{KAFKA_TLS_DIR}/ca.crt": ("my-cluster-cluster-ca-cert", "ca.crt"),
            f"{KAFKA_TLS_DIR}/tls.crt": ("riskos-kafka-user", "user.crt"),
            f"{KAFKA_TLS_DIR}/tls.key": ("riskos-kafka-user", "user.key"),
        },
    ),
    "kafka-scram-tls": (
        {
            "tls": {"enabled": True, "ca_file": f"{KAFKA_TLS_DIR}/ca.crt"},
            "sasl": {"mechanism": "SCRAM-SHA-512", "username": "riskos-connector", "password_file": f"{SECRETS_DIR}/kafka_sasl_password"},
        },
        None,
        {
            f"{KAFKA_TLS_DIR}/ca.crt": ("my-cluster-cluster-ca-cert", "ca.crt"),
            f"{SECRETS_DIR}/kafka_sasl_password": ("riskos-connector-kafka-user", "password"),
        },
    ),
    "kafka-plain": (
        {
            "tls": {"enabled": True},
            "sasl": {"mechanism": "PLAIN", "username": "ABCDEFGHIJKLMNOP", "password_file": f"{SECRETS_DIR}/kafka_sasl_password"},
        },
        None,
        {f"{SECRETS_DIR}/kafka_sasl_password": ("confluent-api-key", "api-secret")},
    ),
    "kafka-oidc": (
        {
            "tls": {"enabled": True},
            "sasl": {
                "mechanism": "OAUTHBEARER",
                "oidc": {
                    "token_endpoint_url": "https://idp.example/realms/kafka/protocol/openid-connect/token",
                    "client_id": "riskos-connector",
                    "client_secret_file": f"{SECRETS_DIR}/kafka_sasl_oidc_client_secret",
                    "scope": "kafka",
                    "extensions": {"identityPoolId": "pool-1", "logicalCluster": "lkc-1"},
                },
            },
        },
        None,
        {f"{SECRETS_DIR}/kafka_sasl_oidc_client_secret": ("riskos-oidc", "client-secret")},
    ),
    "kafka-msk-iam": (
        {"tls": {"enabled": True}, "sasl": {"mechanism": "AWS_MSK_IAM", "aws_msk_iam": {"region": "eu-west-1"}}},
        None,
        {},
    ),
    "registry-bearer": (
        {},
        {"bearer_token_file": f"{SECRETS_DIR}/schema_registry_bearer_token"},
        {f"{SECRETS_DIR}/schema_registry_bearer_token": ("registry-token", "token")},
    ),
    "registry-oauth": (
        {},
        {
            "oauth": {
                "token_endpoint_url": "https://idp.example/oauth2/token",
                "client_id": "riskos-connector",
                "client_secret_file": f"{SECRETS_DIR}/schema_registry_oauth_client_secret",
                "scope": "registry",
                "logical_cluster": "lsrc-1",
                "identity_pool_id": "pool-1",
            }
        },
        {f"{SECRETS_DIR}/schema_registry_oauth_client_secret": ("registry-oauth", "secret")},
    ),
    "registry-mtls": (
        {},
        {
            "ca_file": f"{REGISTRY_TLS_DIR}/ca.crt",
            "cert_file": f"{REGISTRY_TLS_DIR}/tls.crt",
            "key_file": f"{REGISTRY_TLS_DIR}/tls.key",
        },
        {
            f"{REGISTRY_TLS_DIR}/ca.crt": ("registry-client", "ca.crt"),
            f"{REGISTRY_TLS_DIR}/tls.crt": ("registry-client", "tls.crt"),
            f"{REGISTRY_TLS_DIR}/tls.key": ("registry-client", "tls.key"),
        },
    ),
}
REGISTRY_BASE_KEYS = {"url", "timeout_ms", "check_interval_secs"}


def _connection_files(objects: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """The files the connection adds: the kafka-tls and schema-registry-tls volumes, and the
    secrets volume's files but the endpoints' (under <endpoint>/) and the Basic password."""
    files = {**projected_files(objects, "kafka-tls"), **projected_files(objects, "schema-registry-tls")}
    for path, ref in secret_files(objects).items():
        if path.rsplit("/", 1)[1] in CONNECTION_SECRET_FILES:
            assert path.rsplit("/", 1)[0] == SECRETS_DIR, path
            files[path] = ref
    return files


def test_every_connection_scenario_is_checked() -> None:
    assert sorted(SECURED) == sorted(CONNECTION_OVERLAYS)


@pytest.mark.parametrize("scenario", sorted(SECURED))
def test_secured_cluster_config_and_mounts(scenario: str) -> None:
    kafka_expected, registry_expected, files_expected = SECURED[scenario]
    objects = render(SCENARIOS[scenario])
    config = config_toml(objects)
    kafka = {k: v for k, v in config["kafka"].items() if k not in ("bootstrap_servers", "librdkafka")}
    assert kafka == kafka_expected
    if registry_expected is not None:
        registry = {k: v for k, v in config["schema_registry"].items() if k not in REGISTRY_BASE_KEYS}
        assert registry == registry_expected
    # Each file the config names is mounted read-only from the Secret key the values name.
    assert _connection_files(objects) == files_expected
    _check_files_resolve(objects, chart_secret(objects)["data"])
    mounts = {m["name"]: m for m in container(objects)["volumeMounts"]}
    if any(p.startswith(KAFKA_TLS_DIR) for p in files_expected):
        assert mounts["kafka-tls"]["mountPath"] == KAFKA_TLS_DIR
    if any(p.startswith(REGISTRY_TLS_DIR) for p in files_expected):
        assert mounts["schema-registry-tls"]["mountPath"] == REGISTRY_TLS_DIR
    # No credential passes through values: the chart's Secret holds only the generated token.
    assert set(chart_secret(objects)["data"]) == {"riskos.bearer_tokens"}
    pod = workload(objects)["spec"]["template"]["spec"]
    for volume in pod["volumes"]:
        if volume["name"] in ("kafka-tls", "schema-registry-tls"):
            assert volume["projected"]["defaultMode"] == 0o440


def test_kafka_tls_and_sasl_are_off_by_default(default_objects: list[dict[str, Any]]) -> None:
    config = config_toml(default_objects)
    assert config["kafka"] == {"bootstrap_servers": "kafka:9092"}
    assert not REGISTRY_BASE_KEYS ^ set(config["schema_registry"])
    names = {v["name"] for v in workload(default_objects)["spec"]["template"]["spec"]["volumes"]}
    assert not {"kafka-tls", "schema-registry-tls"} & names
    assert _connection_files(default_objects) == {}


def test_msk_iam_uses_the_irsa_annotated_service_account() -> None:
    objects = render(SCENARIOS["kafka-msk-iam"])
    account = one(objects, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": IRSA_ROLE}
    pod = workload(objects)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"] == RELEASE
    # No Kubernetes API token; EKS injects its own web identity token volume regardless.
    assert pod["automountServiceAccountToken"] is False
    # No secret of any kind for MSK IAM: nothing mounted, no env credential.
    assert _connection_files(objects) == {}
    assert not [e for e in container(objects).get("env", []) if e["name"].startswith("AWS_")]
    notes = next(v for k, v in render_files(SCENARIOS["kafka-msk-iam"]).items() if k.endswith("NOTES.txt"))
    assert "Kafka: AWS MSK IAM in eu-west-1" in notes
    assert "no eks.amazonaws.com/role-arn annotation" not in notes
    # Without the annotation the notes say where the credentials would come from.
    bare = deep_merge(SCENARIOS["kafka-msk-iam"], {"serviceAccount": {"annotations": {}}})
    bare["serviceAccount"]["annotations"] = {}
    notes = next(v for k, v in render_files(bare).items() if k.endswith("NOTES.txt"))
    assert f"the ServiceAccount {RELEASE} has no eks.amazonaws.com/role-arn annotation" in notes
    # An existing ServiceAccount (serviceAccount.create false) is used by name, not rendered.
    objects = render(deep_merge(SCENARIOS["kafka-msk-iam"], {"serviceAccount": {"create": False, "name": "riskos-irsa"}}))
    assert by_kind(objects, "ServiceAccount") == []
    assert workload(objects)["spec"]["template"]["spec"]["serviceAccountName"] == "riskos-irsa"


def test_the_secured_examples() -> None:
    msk = render(SCENARIOS["msk-iam-example"])
    config = config_toml(msk)
    assert config["kafka"]["tls"] == {"enabled": True}
    assert config["kafka"]["sasl"] == {"mechanism": "AWS_MSK_IAM", "aws_msk_iam": {"region": "eu-west-1"}}
    assert all(b.endswith(":9098") for b in config["kafka"]["bootstrap_servers"].split(","))
    assert "eks.amazonaws.com/role-arn" in one(msk, "ServiceAccount")["metadata"]["annotations"]
    assert config["schema_registry"]["ca_file"] == f"{REGISTRY_TLS_DIR}/ca.crt"
    cloud = render(SCENARIOS["confluent-cloud-example"])
    config = config_toml(cloud)
    assert config["kafka"]["sasl"]["mechanism"] == "OAUTHBEARER"
    assert set(config["kafka"]["sasl"]["oidc"]["extensions"]) == {"logicalCluster", "identityPoolId"}
    assert config["schema_registry"]["oauth"]["logical_cluster"].startswith("lsrc-")
    # One Secret for both client secrets, mounted twice under the connector's own names.
    assert _connection_files(cloud) == {
        f"{SECRETS_DIR}/kafka_sasl_oidc_client_secret": ("riskos-confluent-cloud", "client-secret"),
        f"{SECRETS_DIR}/schema_registry_oauth_client_secret": ("riskos-confluent-cloud", "client-secret"),
    }
    readme = (CHART / "README.md").read_text()
    assert "examples/msk-iam-values.yaml" in readme and "examples/confluent-cloud-values.yaml" in readme
    assert "## Connecting to a secured cluster" in readme


def test_the_legacy_sasl_password_env_still_works_without_kafka_sasl() -> None:
    # production-values.yaml sets SASL up in kafka.librdkafka with saslPasswordFromSecret.
    objects = render(production_values())
    assert "sasl" not in config_toml(objects)["kafka"] and "tls" not in config_toml(objects)["kafka"]
    env = {e["name"] for e in container(objects)["env"]}
    assert "RISKOS_KAFKA__LIBRDKAFKA__SASL_PASSWORD" in env


SCRAM = {"mechanism": "SCRAM-SHA-512", "username": "riskos", "existingSecret": "kafka-user"}
OIDC = {"tokenEndpointUrl": "https://idp.example/token", "clientId": "riskos"}


@pytest.mark.parametrize(
    "values, where",
    [
        # Types, enums, patterns; no credential can be given as a value.
        ({"kafka": {"sasl": {"mechanism": "SCRAM-SHA-1"}}}, "/kafka/sasl/mechanism"),
        ({"kafka": {"sasl": {"mechanism": "scram-sha-512"}}}, "/kafka/sasl/mechanism"),
        ({"kafka": {"sasl": {"password": "hunter2-hunter2"}}}, "'password' not allowed"),
        ({"kafka": {"sasl": {"oidc": {"clientSecret": "hunter2-hunter2"}}}}, "'clientSecret' not allowed"),
        ({"kafka": {"sasl": {"oidc": {"tokenEndpointUrl": "idp.example/token"}}}}, "/kafka/sasl/oidc/tokenEndpointUrl"),
        ({"kafka": {"sasl": {"oidc": {"extensions": {"logicalCluster": "lkc-1,lkc-2"}}}}}, "/kafka/sasl/oidc/extensions"),
        ({"kafka": {"sasl": {"awsMskIam": {"region": "EU West 1"}}}}, "/kafka/sasl/awsMskIam/region"),
        ({"kafka": {"tls": {"enabled": "yes"}}}, "/kafka/tls/enabled"),
        ({"kafka": {"tls": {"existingSecret": "Not_A_Secret"}}}, "/kafka/tls/existingSecret"),
        ({"kafka": {"tls": {"caFile": "/etc/ssl/ca.pem"}}}, "'caFile' not allowed"),
        ({"schemaRegistry": {"bearerToken": {"token": "hunter2-hunter2"}}}, "'token' not allowed"),
        ({"schemaRegistry": {"oauth": {"clientSecret": "hunter2-hunter2"}}}, "'clientSecret' not allowed"),
        ({"schemaRegistry": {"tls": {"certKey": ""}}}, "/schemaRegistry/tls/certKey"),
        # What a mechanism needs (if/then): the schema names the missing value.
        ({"kafka": {"sasl": {"mechanism": "SCRAM-SHA-512", "username": "riskos"}}}, "/kafka/sasl/existingSecret"),
        ({"kafka": {"sasl": {"mechanism": "SCRAM-SHA-256", "existingSecret": "s"}}}, "/kafka/sasl/username"),
        ({"kafka": {"sasl": {"mechanism": "PLAIN"}}}, "/kafka/sasl/existingSecret"),
        ({"kafka": {"sasl": {"mechanism": "OAUTHBEARER", "existingSecret": "s"}}}, "/kafka/sasl/oidc/tokenEndpointUrl"),
        ({"kafka": {"sasl": {"mechanism": "OAUTHBEARER", "oidc": OIDC}}}, "/kafka/sasl/existingSecret"),
        ({"kafka": {"sasl": {"mechanism": "AWS_MSK_IAM"}}}, "/kafka/tls/enabled"),
        ({"kafka": {"tls": {"enabled": True, "clientCertificate": True}}}, "/kafka/tls/existingSecret"),
        # The registry: one authentication at most, OAuth complete, a certificate's Secret.
        (
            {"schemaRegistry": {"username": "u", "bearerToken": {"existingSecret": "t"}}, "secrets": {"schemaRegistryPassword": "hunter2-hunter2"}},
            "/schemaRegistry/bearerToken/existingSecret",
        ),
        (
            {"schemaRegistry": {"username": "u", "oauth": {**OIDC, "existingSecret": "o"}}, "secrets": {"schemaRegistryPassword": "hunter2-hunter2"}},
            "/schemaRegistry/oauth/tokenEndpointUrl",
        ),
        ({"schemaRegistry": {"bearerToken": {"existingSecret": "t"}, "oauth": {**OIDC, "existingSecret": "o"}}}, "/schemaRegistry/oauth/tokenEndpointUrl"),
        ({"schemaRegistry": {"oauth": {"tokenEndpointUrl": "https://idp.example/token", "clientId": "c"}}}, "/schemaRegistry/oauth/existingSecret"),
        ({"schemaRegistry": {"tls": {"clientCertificate": True}}}, "/schemaRegistry/tls/existingSecret"),
    ],
)
def test_values_schema_refuses_bad_connection_values(values: dict[str, Any], where: str) -> None:
    with helm.Chart.load(str(CHART)) as chart:
        with pytest.raises(helm.HelmValuesError) as error:
            chart.validate_schema(values)
    assert where in str(error.value)
    # helm template and helm lint fail the same way, naming the value.
    with pytest.raises(helm.HelmError) as error:
        render(values)
    assert where in str(error.value)
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
    assert [e for e in report["errors"] if where in e], report["errors"]


@pytest.fixture(scope="session")
def schemaless_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart without values.schema.json: what `helm template
    --skip-schema-validation` (and a tool that skips the schema) renders."""
    import shutil

    chart = tmp_path_factory.mktemp("schemaless") / "riskos-connector"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("examples"))
    (chart / "values.schema.json").unlink()
    return chart


@pytest.mark.parametrize(
    "values, message",
    [
        # A mechanism without what it needs.
        (
            {"kafka": {"sasl": {"mechanism": "SCRAM-SHA-512", "username": "riskos"}}},
            'kafka.sasl.mechanism=SCRAM-SHA-512: kafka.sasl.existingSecret (a Secret made outside the chart, the password under its key "password" = kafka.sasl.passwordKey) is required',
        ),
        ({"kafka": {"sasl": {"mechanism": "PLAIN", "existingSecret": "s"}}}, "kafka.sasl.mechanism=PLAIN: kafka.sasl.username is required"),
        ({"kafka": {"sasl": {"mechanism": "OAUTHBEARER", "existingSecret": "s"}}}, "kafka.sasl.mechanism=OAUTHBEARER: kafka.sasl.oidc.tokenEndpointUrl is required"),
        (
            {"kafka": {"sasl": {"mechanism": "OAUTHBEARER", "existingSecret": "s", "oidc": {"tokenEndpointUrl": "https://idp.example/token"}}}},
            "kafka.sasl.mechanism=OAUTHBEARER: kafka.sasl.oidc.clientId is required",
        ),
        ({"kafka": {"sasl": {"mechanism": "OAUTHBEARER", "oidc": OIDC}}}, "kafka.sasl.mechanism=OAUTHBEARER: kafka.sasl.existingSecret"),
        ({"kafka": {"sasl": {"mechanism": "AWS_MSK_IAM"}}}, "kafka.sasl.mechanism=AWS_MSK_IAM: MSK serves IAM access control over TLS only"),
        # Values of another mechanism, or of none.
        ({"kafka": {"sasl": {"username": "riskos"}}}, "kafka.sasl.username is set but kafka.sasl.mechanism is not"),
        (
            {"kafka": {"tls": {"enabled": True}, "sasl": {"mechanism": "AWS_MSK_IAM", "username": "riskos"}}},
            "kafka.sasl.username does not apply to kafka.sasl.mechanism=AWS_MSK_IAM (only to PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)",
        ),
        ({"kafka": {"sasl": {**SCRAM, "oidc": OIDC}}}, "kafka.sasl.oidc.tokenEndpointUrl does not apply to kafka.sasl.mechanism=SCRAM-SHA-512"),
        ({"kafka": {"sasl": {**SCRAM, "awsMskIam": {"region": "eu-west-1"}}}}, "kafka.sasl.awsMskIam.region does not apply"),
        (
            {"kafka": {"sasl": SCRAM, "saslPasswordFromSecret": True}, "secrets": {"kafkaSaslPassword": "hunter2-hunter2"}},
            "remove kafka.saslPasswordFromSecret",
        ),
        # TLS.
        ({"kafka": {"tls": {"existingSecret": "kafka-ca"}}}, "kafka.tls.existingSecret is set but kafka.tls.enabled is false"),
        ({"kafka": {"tls": {"enabled": True, "clientCertificate": True}}}, 'kafka.tls.clientCertificate: kafka.tls.existingSecret (a Secret with the client certificate under "tls.crt" and its key under "tls.key") is required'),
        ({"kafka": {"tls": {"enabled": True, "existingSecret": "s", "keyPasswordKey": "pw"}}}, "kafka.tls.keyPasswordKey is set without kafka.tls.clientCertificate"),
        ({"kafka": {"tls": {"enabled": True, "existingSecret": "s", "caKey": ""}}}, "kafka.tls.existingSecret is set but nothing is read from it"),
        ({"kafka": {"tls": {"enabled": True, "caSecret": "ca", "caKey": ""}}}, "kafka.tls.caSecret is set but kafka.tls.caKey is empty"),
        # The registry: one authentication at most, each complete.
        (
            {"schemaRegistry": {"username": "u", "bearerToken": {"existingSecret": "t"}}, "secrets": {"schemaRegistryPassword": "hunter2-hunter2"}},
            "schemaRegistry.username (Basic) and schemaRegistry.bearerToken (a bearer token): the registry takes one authentication (Basic, a bearer token or OAuth): remove all but one",
        ),
        (
            {"schemaRegistry": {"bearerToken": {"existingSecret": "t"}, "oauth": {"tokenEndpointUrl": "https://idp.example/token", "clientId": "c", "existingSecret": "o"}}},
            "schemaRegistry.bearerToken (a bearer token) and schemaRegistry.oauth (OAuth client credentials)",
        ),
        ({"schemaRegistry": {"oauth": {"logicalCluster": "lsrc-1"}}}, "schemaRegistry.oauth.tokenEndpointUrl is required with schemaRegistry.oauth"),
        ({"schemaRegistry": {"oauth": {"tokenEndpointUrl": "https://idp.example/token", "clientId": "c"}}}, "schemaRegistry.oauth.existingSecret"),
        ({"schemaRegistry": {"tls": {"clientCertificate": True}}}, "schemaRegistry.tls.clientCertificate: schemaRegistry.tls.existingSecret"),
        ({"schemaRegistry": {"tls": {"existingSecret": "c", "clientCertificate": True}}}, "schemaRegistry.tls.clientCertificate needs an https:// schemaRegistry.url"),
        ({"schemaRegistry": {"tls": {"existingSecret": "c", "caKey": ""}}}, "schemaRegistry.tls.existingSecret is set but nothing is read from it"),
        # An endpoint cannot take the name of a connector-wide file.
        (endpoints(endpoint("kafka_sasl_password", auth={"mode": "none"})), 'endpoints[0].name "kafka_sasl_password" is the name of a connector-wide credential file'),
    ],
)
def test_incomplete_or_conflicting_connection_values_are_refused(
    values: dict[str, Any], message: str, schemaless_chart: Path
) -> None:
    # The templates refuse every incomplete or conflicting connection, saying why and naming
    # the values, also when the schema is skipped (some of these the schema refuses first, see
    # above; the rest it cannot express). helm lint runs templates in lint mode, where `fail`
    # only logs: the schema's rules are what helm lint refuses.
    with helm.Chart.load(str(schemaless_chart)) as chart:
        with pytest.raises(helm.HelmError) as error:
            chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    assert message in str(error.value)
    with pytest.raises(helm.HelmError):
        render(values)

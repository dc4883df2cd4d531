"""Shared helpers for the deployment-artifact tests (Dockerfile, docker-compose, Helm chart).

The chart is rendered with Helm's own Go engine through the `helm-python-sdk` package, so no
`helm` binary is needed.
"""

from __future__ import annotations

import copy
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "riskos-connector"
PRODUCTION_VALUES = CHART / "examples" / "production-values.yaml"
TWO_ENDPOINTS_VALUES = CHART / "examples" / "two-endpoints-values.yaml"
MSK_IAM_VALUES = CHART / "examples" / "msk-iam-values.yaml"
CONFLUENT_CLOUD_VALUES = CHART / "examples" / "confluent-cloud-values.yaml"
SCHEMAS = REPO / "schemas"


def connector_binary() -> Path:
    """The connector the real-binary tests run: the one run.sh built or was handed
    (RISKOS_CONNECTOR_BIN; scripts/test.sh hands over the one its tests built)."""
    binary = Path(os.environ.get("RISKOS_CONNECTOR_BIN", REPO / "target" / "debug" / "riskos-connector"))
    assert binary.exists(), f"{binary} is missing: run.sh builds it (cargo build --bin riskos-connector)"
    return binary

RELEASE = "riskos-connector"
NAMESPACE = "riskos"

CONFIG_DIR = "/etc/riskos-connector"
SECRETS_DIR = "/etc/riskos-connector/secrets"
PROTECTION_DIR = "/etc/riskos-connector/protection"
KAFKA_TLS_DIR = "/etc/riskos-connector/kafka-tls"
REGISTRY_TLS_DIR = "/etc/riskos-connector/schema-registry-tls"
PROTECTION_SECRET = f"{RELEASE}-protection"


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A copy of base with override merged in (maps merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def production_values() -> dict[str, Any]:
    return yaml.safe_load(PRODUCTION_VALUES.read_text())


def two_endpoints_values() -> dict[str, Any]:
    return yaml.safe_load(TWO_ENDPOINTS_VALUES.read_text())


@lru_cache(maxsize=None)
def _render_cached(values_json: str, release: str, namespace: str) -> tuple[tuple[str, str], ...]:
    import helm_python as helm

    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(
            json.loads(values_json), name=release, namespace=namespace, is_install=True
        )
    return tuple(sorted(rendered.items()))


def render_files(values: dict[str, Any] | None = None, release: str = RELEASE) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included)."""
    return dict(_render_cached(json.dumps(values or {}, sort_keys=True), release, NAMESPACE))


def render(values: dict[str, Any] | None = None, release: str = RELEASE) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders for `values`."""
    objects: list[dict[str, Any]] = []
    for path, text in render_files(values, release).items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                assert isinstance(doc, dict), f"{path} rendered a non-object document"
                objects.append(doc)
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected exactly one {kind}, got {len(found)}"
    return found[0]


def workload(objects: list[dict[str, Any]]) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert len(found) == 1, f"expected one Deployment or StatefulSet, got {[o['kind'] for o in found]}"
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = workload(objects)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def secret_files(objects: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Absolute path of every file the `secrets` volume mounts -> (Secret name, key): the
    projected volume's items, under the container's mount path."""
    return projected_files(objects, "secrets")


def projected_files(objects: list[dict[str, Any]], name: str) -> dict[str, tuple[str, str]]:
    """Absolute path of every file the projected volume `name` mounts -> (Secret name, key);
    {} when the pod has no such volume. The mount must be read-only."""
    pod = workload(objects)["spec"]["template"]["spec"]
    volumes = [v for v in pod["volumes"] if v["name"] == name]
    if not volumes:
        assert name not in [m["name"] for m in container(objects)["volumeMounts"]], f"{name} is mounted but not a volume"
        return {}
    (volume,) = volumes
    mount = next(m for m in container(objects)["volumeMounts"] if m["name"] == name)
    assert mount.get("readOnly") is True, f"{name} is mounted writable"
    files: dict[str, tuple[str, str]] = {}
    for source in volume["projected"]["sources"]:
        secret = source["secret"]
        for item in secret["items"]:
            path = f"{mount['mountPath']}/{item['path']}"
            assert path not in files, f"{path} is mounted twice"
            files[path] = (secret["name"], item["key"])
    return files


def secret_named(objects: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The Secret `name` the chart renders, or None."""
    found = [o for o in by_kind(objects, "Secret") if o["metadata"]["name"] == name]
    assert len(found) <= 1, f"the Secret {name} is rendered twice"
    return found[0] if found else None


def chart_secret(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The chart's credentials Secret (named like the release)."""
    secret = secret_named(objects, RELEASE)
    assert secret is not None, "the chart's credentials Secret is not rendered"
    return secret


def protection_files(objects: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Absolute path of every file the `protection` volume mounts -> (Secret name, key)."""
    pod = workload(objects)["spec"]["template"]["spec"]
    volumes = [v for v in pod["volumes"] if v["name"] == "protection"]
    if not volumes:
        return {}
    (volume,) = volumes
    mount = next(m for m in container(objects)["volumeMounts"] if m["name"] == "protection")
    assert mount["readOnly"] is True
    return {
        f"{mount['mountPath']}/{item['path']}": (volume["secret"]["secretName"], item["key"])
        for item in volume["secret"]["items"]
    }


def config_toml(objects: list[dict[str, Any]]) -> dict[str, Any]:
    import tomllib

    configmap = one(objects, "ConfigMap")
    return tomllib.loads(configmap["data"]["config.toml"])


@pytest.fixture(scope="session")
def default_objects() -> list[dict[str, Any]]:
    return render({})


@pytest.fixture(scope="session")
def production_objects() -> list[dict[str, Any]]:
    return render(production_values())

"""docker-compose.yml: validated by `docker-compose config` (no engine needed) and inspected."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, connector_binary

COMPOSE_FILE = REPO / "docker-compose.yml"
CONFIG = REPO / "deploy" / "compose" / "config.toml"
ENV_EXAMPLE = REPO / "deploy" / "compose" / "connector.env.example"


def _docker_compose() -> str:
    path = shutil.which("docker-compose")
    assert path, "docker-compose is not installed (tests/deploy/run.sh installs it with apt-get)"
    return path


def _config(compose_file: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_docker_compose(), "--project-directory", str(cwd), "-f", str(compose_file), "config"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    result = _config(COMPOSE_FILE, REPO)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def connector_config() -> dict[str, Any]:
    return tomllib.loads(CONFIG.read_text())


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", duration)
    assert match and duration, duration
    return int(match.group(1) or 0) * 60 + float(match.group(2) or 0)


def test_docker_compose_config_rejects_an_invalid_file(tmp_path: Path) -> None:
    # The validator really validates: an unknown service key fails.
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  web:\n    image: busybox:1.36\n    helthcheck: {}\n")
    result = _config(bad, tmp_path)
    assert result.returncode != 0
    assert "helthcheck" in result.stderr


def test_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"kafka", "schema-registry", "connector"}


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    images = {name: s["image"] for name, s in compose["services"].items()}
    assert images["kafka"].startswith("apache/kafka:")
    assert images["schema-registry"].startswith("confluentinc/cp-schema-registry:")
    for name in ("kafka", "schema-registry"):
        tag = images[name].split(":", 1)[1]
        assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name} is not pinned to a version: {images[name]}"


def test_kafka_runs_kraft_single_node(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "CONTROLLER://:9093" in env["KAFKA_LISTENERS"]
    protocol_map = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = [l.split("://")[0] for l in env["KAFKA_LISTENERS"].split(",")]
    assert set(listeners) <= set(protocol_map)
    # A KRaft cluster id is 16 bytes, base64url without padding.
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[key] == "1"
    test = " ".join(kafka["healthcheck"]["test"])
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in test or "/opt/kafka/bin/kafka-topics.sh" in test


def test_schema_registry(compose: dict[str, Any]) -> None:
    registry = compose["services"]["schema-registry"]
    env = {k: str(v) for k, v in registry["environment"].items()}
    assert env["SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"].endswith("kafka:19092")
    assert env["SCHEMA_REGISTRY_KAFKASTORE_TOPIC_REPLICATION_FACTOR"] == "1"
    test = " ".join(registry["healthcheck"]["test"])
    assert "curl" in test and "/subjects" in test and ":8081" in test
    assert registry["depends_on"] == {"kafka": {"condition": "service_healthy"}}


def test_connector_service(compose: dict[str, Any]) -> None:
    connector = compose["services"]["connector"]
    assert Path(connector["build"]["context"]) == REPO
    assert connector["build"]["dockerfile"] == "Dockerfile"
    assert connector["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "schema-registry": {"condition": "service_healthy"},
    }
    ports = [(int(p["published"]), int(p["target"])) for p in connector["ports"]]
    assert ports == [(8080, 8080)]
    assert connector["command"] == ["serve", "--config", "/etc/riskos-connector/config.toml"]
    (volume,) = connector["volumes"]
    source, target, mode = volume.split(":")
    assert Path(source) == CONFIG
    assert (target, mode) == ("/etc/riskos-connector/config.toml", "ro")
    assert connector["read_only"] is True
    assert connector["user"] == "10001:10001"
    assert connector["cap_drop"] == ["ALL"]
    # env_file was read: the sample bearer token is in the environment.
    assert connector["environment"]["RISKOS_ENDPOINTS__RISKOS__AUTH__BEARER__TOKENS"] == '["sample-dev-token-change-me"]'
    assert not [k for k in connector["environment"] if k.startswith("RISKOS_AUTH__")]
    # The connector's own healthcheck asks /healthz without curl (not in the runtime image).
    test = " ".join(connector["healthcheck"]["test"])
    assert "/healthz" in test and "curl" not in test and "/dev/tcp/127.0.0.1/8080" in test


def test_connector_config_matches_the_stack(compose: dict[str, Any], connector_config: dict[str, Any]) -> None:
    kafka_env = compose["services"]["kafka"]["environment"]
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    in_network = [a.split("://")[1] for a in advertised if a.split("://")[1].startswith("kafka:")]
    assert connector_config["kafka"]["bootstrap_servers"] in in_network
    assert connector_config["schema_registry"]["url"] == "http://schema-registry:8081"
    assert connector_config["topics"]["replication_factor"] == 1
    assert connector_config["schemas"]["dir"] == "/etc/riskos-connector/schemas"
    assert connector_config["http"]["listen"] == "0.0.0.0:8080"
    # One endpoint, the path the stack documents, bearer auth.
    (endpoint,) = connector_config["endpoints"]
    assert (endpoint["name"], endpoint["path"], endpoint["topic_prefix"]) == ("riskos", "/webhooks/riskos", "riskos.")
    assert endpoint["auth"]["mode"] == "bearer"
    assert "POST /webhooks/riskos" in COMPOSE_FILE.read_text()
    # The single-endpoint keys of the old format are gone.
    assert "auth" not in connector_config
    assert not {"path", "allow_cidrs", "rate_limit_per_ip"} & set(connector_config["http"])
    assert not {"prefix", "quarantine"} & set(connector_config["topics"])
    assert 1 <= connector_config["delivery"]["ack_timeout_ms"] <= 8000


def test_stop_grace_covers_the_shutdown_grace(compose: dict[str, Any], connector_config: dict[str, Any]) -> None:
    grace = math.ceil(connector_config["shutdown"]["grace_ms"] / 1000)
    assert _seconds(compose["services"]["connector"]["stop_grace_period"]) >= grace + 3


def test_no_secret_in_the_mounted_config(connector_config: dict[str, Any]) -> None:
    text = CONFIG.read_text()
    assert "sample-dev-token-change-me" not in text
    for endpoint in connector_config["endpoints"]:
        assert "tokens" not in endpoint["auth"].get("bearer", {})
    assert "password" not in connector_config["schema_registry"]


def test_env_example_is_a_documented_sample() -> None:
    text = ENV_EXAMPLE.read_text()
    assignments = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    assert assignments
    for line in assignments:
        name, _, value = line.partition("=")
        assert re.fullmatch(r"RISKOS_[A-Z0-9_]+__[A-Z0-9_]+", name), name
        assert value, name
    # The endpoint "riskos" by name (RISKOS_ENDPOINTS__<NAME>__...).
    assert "RISKOS_ENDPOINTS__RISKOS__AUTH__BEARER__TOKENS=" in text
    assert "RISKOS_AUTH__" not in text
    assert "SAMPLE" in text and "never use" in text.lower()


def test_the_binary_tests_run_the_connector_run_sh_hands_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """scripts/test.sh hands over the connector its tests built (RISKOS_CONNECTOR_BIN) and
    run.sh then builds none: the tests must run that one, not whatever target/debug holds."""
    handed = tmp_path / "riskos-connector"
    handed.write_bytes(b"")
    monkeypatch.setenv("RISKOS_CONNECTOR_BIN", str(handed))
    assert connector_binary() == handed


def test_the_connector_accepts_the_compose_config_and_env() -> None:
    """The real binary loads deploy/compose/config.toml with the sample env file applied."""
    import json
    import os
    import subprocess

    binary = connector_binary()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKOS_")}
    for line in (REPO / "deploy/compose/connector.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    result = subprocess.run(
        [str(binary), "config", "check", "--offline", "--config", str(REPO / "deploy/compose/config.toml")],
        capture_output=True, text=True, env=env, check=False,
    )
    assert result.returncode == 0, (
        f"`riskos-connector config check` refused deploy/compose/config.toml: {result.stderr.strip()}\n"
        "(the binary must be built from the [[endpoints]] config format)"
    )
    shown = subprocess.run(
        [str(binary), "config", "show", "--config", str(REPO / "deploy/compose/config.toml")],
        capture_output=True, text=True, env=env, check=True,
    )
    effective = json.loads(shown.stdout)
    (endpoint,) = effective["endpoints"]
    assert (endpoint["name"], endpoint["path"]) == ("riskos", "/webhooks/riskos")
    assert endpoint["auth"]["mode"] == "bearer"
    # The env file's token reached the endpoint by name, and is redacted.
    assert endpoint["auth"]["bearer"]["tokens"] == ["[redacted]"]
    assert effective["kafka"]["bootstrap_servers"] == "kafka:19092"


def _env_example() -> dict[str, str]:
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def test_the_stack_has_protection_keys(connector_config: dict[str, Any], tmp_path: Path) -> None:
    """The endpoint protects (the defaults written out) and the sample env file gives the keys
    it needs: the real binary protects a fixture with them and opens it again."""
    import json
    import os

    (endpoint,) = connector_config["endpoints"]
    assert (endpoint["protect_fields"], endpoint["raw"]) == (True, "encrypt")
    sample = _env_example()
    for name in ("RISKOS_PROTECTION__HASH_KEYS", "RISKOS_PROTECTION__ENCRYPTION_KEYS"):
        (key,) = json.loads(sample[name])
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/]{43}=", key), name
        assert key.split(":", 1)[1] not in CONFIG.read_text()
    assert "PUBLIC SAMPLES" in ENV_EXAMPLE.read_text()
    binary = connector_binary()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKOS_")}
    env.update(sample)
    env["RISKOS_SCHEMAS__DIR"] = str(REPO / "schemas")
    fixture = REPO / "tests" / "fixtures" / "request_token.create_reviews_is_entity.json"
    result = subprocess.run(
        [str(binary), "validate", "--config", str(CONFIG), "--reveal", str(fixture)],
        capture_output=True, text=True, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert line["protected"] is True
    assert line["record"]["data"]["reviewer"].startswith("e2.compose-sample.")
    assert line["record"]["data"]["entity_token"].startswith("h2.compose-sample.")
    assert line["revealed"]["raw"] == fixture.read_text()
    # `config show` redacts them.
    check = subprocess.run(
        [str(binary), "config", "show", "--config", str(CONFIG)],
        capture_output=True, text=True, env=env, check=False,
    )
    assert check.returncode == 0, check.stderr
    protection = json.loads(check.stdout)["protection"]
    assert protection["hash_keys"] == ["[redacted]"] and protection["encryption_keys"] == ["[redacted]"]

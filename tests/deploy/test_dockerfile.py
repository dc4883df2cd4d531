"""The Dockerfile: build and runtime stages, read statically (no engine needed)."""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
import shlex
import tomllib
from dataclasses import dataclass, field

import pytest

from conftest import REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
EXAMPLE_CONFIG = REPO / "config.example.toml"
RUNBOOK = REPO / "docs" / "runbook.md"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def _logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        lines.append(current)
        current = ""
    assert not current, "dangling line continuation"
    return lines


def parse() -> tuple[dict[str, str], list[Stage]]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(DOCKERFILE.read_text()):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        elif not stages and keyword == "ARG":
            key, _, value = args.partition("=")
            global_args[key] = value
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse()[1]


@pytest.fixture(scope="module")
def builder(stages: list[Stage]) -> Stage:
    return next(s for s in stages if s.name == "builder")


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_two_stages_on_the_requested_bases(stages: list[Stage]) -> None:
    assert [s.name for s in stages] == ["builder", "runtime"]
    assert stages[0].base == "rust:1-bookworm"
    assert stages[-1].base == "debian:bookworm-slim"


def test_builder_installs_the_librdkafka_build_dependencies(builder: Stage) -> None:
    installs = " ".join(builder.all("RUN"))
    for package in ("gcc", "g++", "make", "perl", "pkg-config", "libssl-dev", "zlib1g-dev"):
        assert re.search(rf"(?<![\w.-]){re.escape(package)}(?![\w.-])", installs), package
    assert "rm -rf /var/lib/apt/lists/*" in installs


def test_builder_caches_dependencies_before_the_sources(builder: Stage) -> None:
    steps = builder.instructions
    copy_manifest = next(i for i, (kw, a) in enumerate(steps) if kw == "COPY" and "Cargo.lock" in a)
    copy_sources = next(i for i, (kw, a) in enumerate(steps) if kw == "COPY" and a.split()[0] == "connector")
    deps_build = [
        i for i, (kw, a) in enumerate(steps)
        if kw == "RUN" and "cargo build --release --locked" in a and copy_manifest < i < copy_sources
    ]
    assert deps_build, "no dependency-only cargo build between copying Cargo.lock and the sources"
    assert steps[copy_manifest][1].split() == ["Cargo.toml", "Cargo.lock", "./"]
    final_build = [i for i, (kw, a) in enumerate(steps) if kw == "RUN" and "cargo build --release --locked" in a and i > copy_sources]
    assert final_build
    # The stub crate's artifacts are removed so the real sources are rebuilt.
    assert "touch connector/lib.rs connector/main.rs" in steps[final_build[0]][1]


def test_runtime_copies_only_the_binary_and_schemas(runtime: Stage) -> None:
    assert runtime.all("ADD") == []
    copies = [shlex.split(a) for a in runtime.all("COPY")]
    assert copies == [
        ["--from=builder", "/build/target/release/riskos-connector", "/usr/local/bin/riskos-connector"],
        ["schemas/", "/etc/riskos-connector/schemas/"],
    ]


def test_runtime_packages_are_minimal(runtime: Stage) -> None:
    runs = " ".join(runtime.all("RUN"))
    installed = re.search(r"apt-get install -y --no-install-recommends ([^&]+)&&", runs)
    assert installed
    assert sorted(installed.group(1).split()) == ["ca-certificates", "libssl3", "zlib1g"]
    for tool in ("curl", "wget", "gcc", "cargo"):
        assert tool not in installed.group(1)
    assert "rm -rf /var/lib/apt/lists/*" in runs
    assert runtime.all("HEALTHCHECK") == []


def test_runtime_runs_as_uid_10001(runtime: Stage) -> None:
    (user,) = runtime.all("USER")
    uid = user.split(":")[0]
    assert uid == "10001"  # numeric, so runAsNonRoot can verify it
    runs = " ".join(runtime.all("RUN"))
    assert re.search(r"useradd .*--uid 10001", runs)
    assert re.search(r"groupadd .*--gid 10001", runs)
    # USER comes after every RUN (nothing runs as root after dropping privileges... and before).
    kinds = [kw for kw, _ in runtime.instructions]
    assert kinds.index("USER") > max(i for i, kw in enumerate(kinds) if kw == "RUN")


def test_runtime_entrypoint_and_port(runtime: Stage) -> None:
    assert runtime.all("EXPOSE") == ["8080"]
    (entrypoint,) = runtime.all("ENTRYPOINT")
    (cmd,) = runtime.all("CMD")
    assert entrypoint == '["/usr/local/bin/riskos-connector"]'
    assert cmd == '["serve", "--config", "/etc/riskos-connector/config.toml"]'
    # RISKOS_* variables are config overrides: the image must set none.
    assert not [e for e in runtime.all("ENV") if "RISKOS_" in e]


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            ignored = not negate
    return ignored


def test_dockerignore() -> None:
    patterns = [
        l.strip() for l in DOCKERIGNORE.read_text().splitlines() if l.strip() and not l.startswith("#")
    ]
    for required in ("target", ".git", ".venv", ".tools"):
        assert _ignored(required, patterns), f"{required} is not excluded"
    # Everything the build copies is present and not excluded.
    for needed in ("Cargo.toml", "Cargo.lock", "tests/support/Cargo.toml", "connector", "schemas"):
        assert (REPO / needed).exists(), needed
        assert not _ignored(needed, patterns), f"{needed} is excluded but the build copies it"


def _workdir(stage: Stage) -> str:
    """The stage's working directory once its instructions ran (`/` until a WORKDIR)."""
    cwd = "/"
    for keyword, args in stage.instructions:
        if keyword == "WORKDIR":
            cwd = posixpath.normpath(posixpath.join(cwd, args.strip()))
    return cwd


def _config_path(runtime: Stage) -> str:
    (cmd,) = runtime.all("CMD")
    args = json.loads(cmd)
    return args[args.index("--config") + 1]


def test_the_example_config_finds_the_schemas_the_image_ships(runtime: Stage) -> None:
    # `docker run` with config.example.toml: its relative `schemas.dir` resolves against the
    # image's working directory, which must be where the schemas were copied.
    example = tomllib.loads(EXAMPLE_CONFIG.read_text())
    schemas_dir = example.get("schemas", {}).get("dir", "schemas")
    resolved = posixpath.normpath(posixpath.join(_workdir(runtime), schemas_dir))
    shipped = [
        posixpath.normpath(args[-1])
        for args in (shlex.split(a) for a in runtime.all("COPY"))
        if args[0].rstrip("/") == "schemas"
    ]
    assert resolved in shipped, (
        f"schemas.dir = {schemas_dir!r} resolves to {resolved} in the image, "
        f"but the schemas are at {shipped}"
    )


def test_the_documented_docker_run_mounts_a_config_where_the_image_reads_it(runtime: Stage) -> None:
    header = [l.lstrip("# ").strip() for l in DOCKERFILE.read_text().splitlines() if l.startswith("#")]
    runs = [l for l in header if l.startswith("docker run ")]
    assert runs, "the Dockerfile's header shows no `docker run`"
    for run in runs:
        mounts = [a.split(":") for a in shlex.split(run) if a.count(":") >= 1 and a.startswith("$PWD/")]
        assert [m[1] for m in mounts] == [_config_path(runtime)], run
    # The mounted file starts from the example (what the schemas test above checks).
    assert any("config.example.toml" in l for l in header)


# Tools the runtime image lacks: debian:bookworm-slim ships none of them and the Dockerfile
# installs only shared libraries and CA certificates (test_runtime_packages_are_minimal).
NOT_IN_IMAGE = {"curl", "wget", "jq", "nc", "ncat", "kcat", "ps", "top", "ss", "netstat", "dig", "nslookup", "ping"}


def test_runbook_runs_nothing_in_the_pod_the_image_lacks(runtime: Stage) -> None:
    binaries = {posixpath.basename(shlex.split(a)[-1]) for a in runtime.all("COPY") if "/bin/" in a}
    assert binaries == {"riskos-connector"}
    text = RUNBOOK.read_text()
    # One paragraph per section heading and per **Means:** / **Look at:** / **Do:** item.
    for paragraph in re.split(r"\n(?=\*\*|#)", text):
        flat = paragraph.replace("\n", " ")
        spans = re.findall(r"`([^`]+)`", flat)
        in_pod = "kubectl exec" in flat
        for span in spans:
            words = span.split()
            if span.startswith("kubectl exec"):
                assert " -- " in span, f"`{span}`: say what runs in the pod (`kubectl exec ... -- riskos-connector ...`)"
                command = span.split(" -- ", 1)[1].split()[0]
                assert posixpath.basename(command) in binaries, f"`{span}`: {command} is not in the image"
            elif words and words[0] in NOT_IN_IMAGE:
                assert not in_pod, f"`{span}` next to `kubectl exec`: the image has no {words[0]}"
                if "localhost" in span or "127.0.0.1" in span:
                    assert "port-forward" in flat, f"`{span}` reaches a pod only through `kubectl port-forward`"

"""Offline checks of the deployment files: Dockerfile, docker-compose.yml and deploy/k8s/*.yaml.

Every `funnelstream` invocation in them is parsed by the real CLI (typer's click command), every
FUNNELSTREAM_* name must be a setting, and the cross references (depends_on, selectors, HPA target,
Secret keys, probe ports) must resolve. No Docker, cluster or database needed.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.core
import typer.main
import yaml
from pydantic_settings import BaseSettings

import funnelstream.cli
from shared.settings import (
    ENV_PREFIX,
    AdminSettings,
    IngestSettings,
    NurtureSettings,
    ScoringSettings,
    Settings,
    setting_env_names,
)

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S_DIR = ROOT / "deploy" / "k8s"

Doc = dict[str, Any]

# Subcommands that serve HTTP on --port, and the consumers that serve health on FUNNELSTREAM_HEALTH_PORT.
HTTP_COMMANDS = {"ingest", "api"}
CONSUMER_COMMANDS = {"scoring", "nurture"}
LONG_RUNNING = HTTP_COMMANDS | CONSUMER_COMMANDS
SETTINGS_FOR_COMMAND: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "api": AdminSettings,
    "scoring": ScoringSettings,
    "nurture": NurtureSettings,
}
COMPOSE_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what containers listen on


# --- loading -------------------------------------------------------------------------------------


@cache
def compose() -> Doc:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{COMPOSE_FILE.name}: top level must be a mapping"
    return data


def compose_services() -> dict[str, Doc]:
    services = compose().get("services")
    assert isinstance(services, dict) and services, "docker-compose.yml has no services"
    return services


def k8s_files() -> list[Path]:
    return sorted([*K8S_DIR.glob("*.yaml"), *K8S_DIR.glob("*.yml")])


@cache
def k8s_docs() -> tuple[tuple[str, Doc], ...]:
    """(file name, document) for every non-empty document of every manifest."""
    docs: list[tuple[str, Doc]] = []
    for path in k8s_files():
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is None:
                continue
            assert isinstance(doc, dict), f"{path.name}: every document must be a mapping"
            docs.append((path.name, doc))
    return tuple(docs)


def k8s_kind(kind: str) -> list[tuple[str, Doc]]:
    return [(name, doc) for name, doc in k8s_docs() if doc.get("kind") == kind]


def resource_name(doc: Doc) -> str:
    name = doc.get("metadata", {}).get("name")
    assert isinstance(name, str) and name, f"{doc.get('kind')} without metadata.name"
    return name


def pod_spec(doc: Doc) -> Doc | None:
    kind = doc.get("kind")
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
        spec: Doc = doc["spec"]["template"]["spec"]
        return spec
    if kind == "CronJob":
        spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return spec
    return None


@dataclass
class K8sContainer:
    where: str
    container: Doc
    init: bool
    workload: Doc
    env: dict[str, str | None] = field(default_factory=dict)


def k8s_containers() -> Iterator[K8sContainer]:
    for file_name, doc in k8s_docs():
        spec = pod_spec(doc)
        if spec is None:
            continue
        for key in ("initContainers", "containers"):
            for container in spec.get(key) or []:
                where = f"{file_name}: {doc['kind']}/{resource_name(doc)} {key[:-1]} {container.get('name')}"
                yield K8sContainer(where, container, key == "initContainers", doc, effective_env(container))


def is_funnelstream_image(image: object) -> bool:
    return isinstance(image, str) and "funnelstream" in image


def configmap_data() -> dict[str, dict[str, str]]:
    return {resource_name(doc): dict(doc.get("data") or {}) for _, doc in k8s_kind("ConfigMap")}


def secret_keys() -> dict[str, set[str]]:
    return {
        resource_name(doc): set(doc.get("stringData") or {}) | set(doc.get("data") or {})
        for _, doc in k8s_kind("Secret")
    }


def effective_env(container: Doc) -> dict[str, str | None]:
    """What the process sees: envFrom ConfigMap values (Secret keys as None), then `env` on top."""
    env: dict[str, str | None] = {}
    maps, secrets = configmap_data(), secret_keys()
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            for key, value in maps.get(source["configMapRef"]["name"], {}).items():
                env[prefix + key] = str(value)
        if "secretRef" in source:
            for key in secrets.get(source["secretRef"]["name"], set()):
                env[prefix + key] = None
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif not item.get("valueFrom", {}).get("secretKeyRef", {}).get("optional", False):
            env[item["name"]] = None
    return env


def compose_env(service: Doc) -> dict[str, str | None]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (str(item).partition("=") for item in raw)
        return {key: (value if sep else None) for key, sep, value in pairs}
    assert isinstance(raw, dict)
    return {str(key): (None if value is None else str(value)) for key, value in raw.items()}


def compose_argv(service: Doc) -> list[str] | None:
    command = service.get("command")
    if command is None:
        return None
    if isinstance(command, str):
        return shlex.split(command)
    return [str(part) for part in command]


def compose_default(value: str) -> str:
    """`${NAME:-default}` -> default, as compose does when NAME is unset."""
    match = re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", value)
    return match.group(1) if match else value


def funnelstream_compose_services() -> dict[str, Doc]:
    return {
        name: svc
        for name, svc in compose_services().items()
        if "build" in svc or is_funnelstream_image(svc.get("image"))
    }


# --- the CLI -------------------------------------------------------------------------------------


@cache
def cli() -> Any:
    return typer.main.get_command(funnelstream.cli.app)


def check_invocation(argv: list[str]) -> tuple[str | None, dict[str, Any]]:
    """Parse `funnelstream <argv>` with the real CLI without running it: (error or None, parsed params)."""
    command = cli()
    path = ["funnelstream"]
    rest = list(argv)
    while isinstance(command, typer.core.TyperGroup):
        if not rest or rest[0].startswith("-"):
            return f"`{' '.join(path)}` needs a subcommand (one of {sorted(command.commands)})", {}
        name, rest = rest[0], rest[1:]
        sub = command.get_command(typer.Context(command), name)
        if sub is None:
            return f"`{' '.join(path)}` has no subcommand {name!r} (has {sorted(command.commands)})", {}
        path.append(name)
        command = sub
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for token in rest:
        if token.startswith("-") and token.split("=", 1)[0] not in known:
            return f"`{' '.join(path)}` has no option {token.split('=', 1)[0]} (has {sorted(known)})", {}
    try:
        ctx = command.make_context(" ".join(path), list(rest))
    except typer.TyperException as exc:
        return f"`{' '.join(path)} {' '.join(rest)}`: {exc}", {}
    return None, dict(ctx.params)


def required_env(argv: list[str]) -> set[str]:
    """FUNNELSTREAM_* variables the subcommand cannot start without."""
    cls = SETTINGS_FOR_COMMAND.get(argv[0])
    if cls is not None:
        return {ENV_PREFIX + name.upper() for name, info in cls.model_fields.items() if info.is_required()}
    if argv[0] == "migrate":
        return {ENV_PREFIX + "DATABASE_URL"}
    if argv[0] in {"topics", "dlq"}:  # the CLI fills in a dummy database URL for these
        required = {ENV_PREFIX + name.upper() for name, info in Settings.model_fields.items() if info.is_required()}
        return required - {ENV_PREFIX + "DATABASE_URL"}
    return set()


def listen_port(argv: list[str], env: dict[str, str | None], where: str) -> int:
    """The port the health endpoints are served on for this invocation."""
    error, params = check_invocation(argv)
    assert error is None, f"{where}: {error}"
    if argv[0] in HTTP_COMMANDS:
        return int(params["port"])
    raw = env.get(ENV_PREFIX + "HEALTH_PORT")
    assert raw is not None, f"{where}: consumers need a fixed {ENV_PREFIX}HEALTH_PORT (0 picks a random port)"
    port = int(compose_default(raw))
    assert port > 0, f"{where}: {ENV_PREFIX}HEALTH_PORT must be fixed, not 0"
    return port


# --- the checker itself --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["ingest", "--host", ALL_INTERFACES, "--port", "8000"],
        ["ingest", "--workers", "4"],
        ["api", f"--host={ALL_INTERFACES}", "--port=8001"],
        ["scoring"],
        ["nurture"],
        ["migrate"],
        ["topics"],
        ["topics", "--check"],
        ["dlq", "list", "--limit", "10"],
        ["dlq", "replay", "--dry-run"],
    ],
)
def test_checker_accepts_real_invocations(argv: list[str]) -> None:
    error, _ = check_invocation(argv)
    assert error is None, error


@pytest.mark.parametrize(
    "argv",
    [
        ["ingst"],
        ["ingest", "--hots", ALL_INTERFACES],
        ["ingest", "--port", "eighty"],
        ["api", "--workers", "2"],
        ["scoring", "extra"],
        ["topics", "--chek"],
        ["dlq"],
        ["dlq", "lst"],
        ["--port", "8000"],
    ],
)
def test_checker_rejects_typos(argv: list[str]) -> None:
    error, _ = check_invocation(argv)
    assert error is not None, f"{argv} should have been rejected"


# --- parsing -------------------------------------------------------------------------------------


def test_compose_parses() -> None:
    services = compose_services()
    assert {"kafka", "postgres", "migrate", "topics"} <= set(services)
    for name, svc in services.items():
        assert isinstance(svc, dict), f"service {name} must be a mapping"
        assert "image" in svc or "build" in svc, f"service {name} has neither image nor build"


def test_k8s_manifests_parse() -> None:
    files = k8s_files()
    assert files, f"no manifests in {K8S_DIR}"
    seen: set[tuple[str, str]] = set()
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        assert docs, f"{path.name} is empty"
        for doc in docs:
            assert isinstance(doc, dict), f"{path.name}: document is not a mapping"
            assert doc.get("apiVersion") and doc.get("kind"), f"{path.name}: apiVersion and kind are required"
            key = (doc["kind"], resource_name(doc))
            assert key not in seen, f"{path.name}: duplicate {key[0]}/{key[1]}"
            assert "namespace" not in doc["metadata"], f"{path.name}: manifests stay namespace-agnostic"
            seen.add(key)
    kinds = {kind for kind, _ in seen}
    assert {"ConfigMap", "Secret", "Deployment", "Service", "Job", "HorizontalPodAutoscaler"} <= kinds


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM\s+\S*python:3\.11-slim", text, re.M) or "PYTHON_IMAGE=python:3.11-slim" in text
    assert re.search(r"^RUN\s+pip install \.", text, re.M), "the project is installed with `pip install .`"
    assert re.search(r'^ENTRYPOINT \["funnelstream"\]\s*$', text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must run as a non-root user"


# --- every funnelstream invocation exists in the CLI ---------------------------------------------


def test_compose_commands_exist_in_cli() -> None:
    services = funnelstream_compose_services()
    assert services, "no funnelstream services in docker-compose.yml"
    problems = []
    for name, svc in services.items():
        argv = compose_argv(svc)
        if not argv:
            problems.append(f"service {name}: no command (the image's default is --help)")
            continue
        error, _ = check_invocation(argv)
        if error:
            problems.append(f"service {name}: {error}")
    assert not problems, "\n".join(problems)
    used = {argv[0] for svc in services.values() if (argv := compose_argv(svc))}
    assert LONG_RUNNING | {"migrate", "topics"} <= used, f"compose runs only {sorted(used)}"


def test_k8s_args_exist_in_cli() -> None:
    problems = []
    used: set[str] = set()
    for c in k8s_containers():
        if not is_funnelstream_image(c.container.get("image")):
            continue
        if "command" in c.container:
            problems.append(f"{c.where}: use `args:`; `command:` replaces the funnelstream entrypoint")
        args = [str(a) for a in c.container.get("args") or []]
        if not args:
            problems.append(f"{c.where}: no args (the image's default is --help)")
            continue
        error, _ = check_invocation(args)
        if error:
            problems.append(f"{c.where}: {error}")
        if not c.init:
            used.add(args[0])
    assert not problems, "\n".join(problems)
    assert LONG_RUNNING | {"migrate", "topics"} <= used, f"k8s runs only {sorted(used)}"


# --- environment ---------------------------------------------------------------------------------


def test_env_names_are_settings() -> None:
    valid = setting_env_names()
    found: list[tuple[str, str]] = []
    for name, svc in compose_services().items():
        found += [(f"compose service {name}", key) for key in compose_env(svc)]
    for key, value in compose().items():
        if key.startswith("x-") and isinstance(value, dict):
            found += [(f"compose {key}", k) for k in value if isinstance(k, str)]
    for file_name, doc in k8s_kind("ConfigMap"):
        found += [(f"{file_name}: ConfigMap data", key) for key in doc.get("data") or {}]
    for file_name, doc in k8s_kind("Secret"):
        found += [(f"{file_name}: Secret", key) for key in {**(doc.get("stringData") or {}), **(doc.get("data") or {})}]
    for c in k8s_containers():
        found += [(c.where, item["name"]) for item in c.container.get("env") or []]
    checked = [(where, key) for where, key in found if key.startswith(ENV_PREFIX)]
    assert checked, "no FUNNELSTREAM_* variables found at all"
    unknown = [f"{where}: {key}" for where, key in checked if key not in valid]
    assert not unknown, "not settings (see shared/settings.py):\n" + "\n".join(unknown)


def test_required_settings_are_provided() -> None:
    problems = []
    for name, svc in funnelstream_compose_services().items():
        argv = compose_argv(svc)
        if argv:
            missing = required_env(argv) - set(compose_env(svc))
            if missing:
                problems.append(f"compose service {name} ({argv[0]}) lacks {sorted(missing)}")
    for c in k8s_containers():
        args = [str(a) for a in c.container.get("args") or []]
        if args and is_funnelstream_image(c.container.get("image")):
            missing = required_env(args) - set(c.env)
            if missing:
                problems.append(f"{c.where} ({args[0]}) lacks {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_k8s_config_and_secret_references_resolve() -> None:
    maps, secrets = configmap_data(), secret_keys()
    problems = []
    for c in k8s_containers():
        for source in c.container.get("envFrom") or []:
            if "configMapRef" in source and source["configMapRef"]["name"] not in maps:
                problems.append(f"{c.where}: envFrom ConfigMap {source['configMapRef']['name']} not defined")
            if "secretRef" in source and source["secretRef"]["name"] not in secrets:
                problems.append(f"{c.where}: envFrom Secret {source['secretRef']['name']} not defined")
        for item in c.container.get("env") or []:
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional", False) and ref["key"] not in secrets.get(ref["name"], set()):
                problems.append(f"{c.where}: env {item['name']} needs key {ref['key']} of Secret {ref['name']}")
            ref = item.get("valueFrom", {}).get("configMapKeyRef")
            if ref and not ref.get("optional", False) and ref["key"] not in maps.get(ref["name"], {}):
                problems.append(f"{c.where}: env {item['name']} needs key {ref['key']} of ConfigMap {ref['name']}")
    assert not problems, "\n".join(problems)


# --- compose wiring ------------------------------------------------------------------------------


def test_compose_depends_on_existing_services() -> None:
    services = compose_services()
    problems = []
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        items = {d: {} for d in deps} if isinstance(deps, list) else deps
        for dep, spec in items.items():
            if dep not in services:
                problems.append(f"{name} depends on unknown service {dep}")
                continue
            condition = (spec or {}).get("condition", "service_started")
            if condition not in COMPOSE_CONDITIONS:
                problems.append(f"{name} -> {dep}: unknown condition {condition}")
            if condition == "service_healthy" and "healthcheck" not in services[dep]:
                problems.append(f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck")
            if condition == "service_completed_successfully" and services[dep].get("restart", "no") != "no":
                problems.append(f"{name} waits for one-shot {dep} to finish, but {dep} restarts")
    assert not problems, "\n".join(problems)


def test_compose_services_wait_for_infrastructure_and_one_shots() -> None:
    for name, svc in funnelstream_compose_services().items():
        argv = compose_argv(svc) or [""]
        if argv[0] not in LONG_RUNNING:
            continue
        deps = svc.get("depends_on")
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions"
        conditions = {dep: spec.get("condition") for dep, spec in deps.items()}
        one_shots = {
            other: "service_completed_successfully"
            for other, o_svc in funnelstream_compose_services().items()
            if (compose_argv(o_svc) or [""])[0] in {"migrate", "topics"}
        }
        assert {"kafka": "service_healthy", "postgres": "service_healthy", **one_shots}.items() <= conditions.items()


def test_compose_healthchecks_probe_the_service_port() -> None:
    problems = []
    for name, svc in funnelstream_compose_services().items():
        argv = compose_argv(svc) or [""]
        if argv[0] not in LONG_RUNNING:
            continue
        test = svc.get("healthcheck", {}).get("test")
        if not test:
            problems.append(f"{name}: no healthcheck")
            continue
        text = test if isinstance(test, str) else " ".join(str(t) for t in test)
        match = re.search(r"https?://[^/:\s'\"]+:(\d+)/(readyz|healthz)\b", text)
        if not match:
            problems.append(f"{name}: healthcheck does not request /readyz or /healthz: {text}")
            continue
        port = listen_port(argv, compose_env(svc), f"compose service {name}")
        if int(match.group(1)) != port:
            problems.append(f"{name}: healthcheck uses port {match.group(1)}, the service listens on {port}")
        if "curl" in text or "wget" in text:
            problems.append(f"{name}: the image has python, not curl/wget")
    assert not problems, "\n".join(problems)


# --- k8s wiring ----------------------------------------------------------------------------------


def container_port(container: Doc, port: object) -> int | None:
    if isinstance(port, int):
        return port
    for item in container.get("ports") or []:
        if item.get("name") == port:
            return int(item["containerPort"])
    return None


def test_deployments_have_probes_on_the_listen_port() -> None:
    deployments = k8s_kind("Deployment")
    assert deployments
    problems = []
    for c in k8s_containers():
        if c.workload.get("kind") != "Deployment" or c.init:
            continue
        args = [str(a) for a in c.container.get("args") or []]
        expected = {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}
        for probe_name, path in expected.items():
            probe = c.container.get(probe_name)
            if not probe:
                problems.append(f"{c.where}: no {probe_name}")
                continue
            http = probe.get("httpGet") or {}
            if http.get("path") != path:
                problems.append(f"{c.where}: {probe_name} should GET {path}, not {http.get('path')}")
            port = container_port(c.container, http.get("port"))
            if port is None:
                problems.append(f"{c.where}: {probe_name} port {http.get('port')} is not a container port")
            elif args and args[0] in LONG_RUNNING and port != listen_port(args, c.env, c.where):
                problems.append(f"{c.where}: {probe_name} on {port}, the process listens elsewhere")
        if not (c.container.get("resources") or {}).get("requests"):
            problems.append(f"{c.where}: no resource requests")
    assert not problems, "\n".join(problems)


def test_deployment_selectors_match_their_pods() -> None:
    for file_name, doc in k8s_kind("Deployment"):
        selector = doc["spec"]["selector"]["matchLabels"]
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"{file_name}: selector {selector} does not match {labels}"


def test_services_select_a_deployment() -> None:
    deployments = k8s_kind("Deployment")
    services = k8s_kind("Service")
    assert services
    for file_name, svc in services:
        selector = svc["spec"].get("selector") or {}
        assert selector, f"{file_name}: Service {resource_name(svc)} selects nothing"
        targets = [d for _, d in deployments if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert targets, f"{file_name}: Service {resource_name(svc)} selects {selector}, no Deployment has it"
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for d in targets:
                containers = d["spec"]["template"]["spec"]["containers"]
                assert any(container_port(c, target) is not None for c in containers) or isinstance(target, int), (
                    f"{file_name}: targetPort {target} is not a port of Deployment {resource_name(d)}"
                )


def test_hpa_targets_an_existing_deployment() -> None:
    hpas = k8s_kind("HorizontalPodAutoscaler")
    assert hpas
    deployments = {resource_name(d): d for _, d in k8s_kind("Deployment")}
    partitions = {data.get(ENV_PREFIX + "PARTITIONS") for data in configmap_data().values()} - {None}
    for file_name, hpa in hpas:
        assert hpa["apiVersion"] == "autoscaling/v2", f"{file_name}: use autoscaling/v2"
        ref = hpa["spec"]["scaleTargetRef"]
        assert ref["kind"] == "Deployment" and ref["name"] in deployments, f"{file_name}: no Deployment {ref}"
        target = deployments[ref["name"]]
        for container in target["spec"]["template"]["spec"]["containers"]:
            assert "cpu" in container.get("resources", {}).get("requests", {}), (
                f"{file_name}: CPU utilization needs cpu requests on {ref['name']}"
            )
        for value in partitions:
            assert int(hpa["spec"]["maxReplicas"]) <= int(str(value)), (
                f"{file_name}: maxReplicas above the partition count ({value}) only adds idle consumers"
            )

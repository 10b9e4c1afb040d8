"""Static checks of the collector configurations and the demo docker-compose stack.

Docker and the otelcol-contrib binary are not available on the machines this suite runs on, so these
tests check everything that can be checked without them: every YAML file parses; every component is in
the official otelcol-contrib distribution at the pinned version (tests/otelcol_contrib_components.py);
pipelines reference only defined components and every defined extension is enabled; every network
exporter persists its sending queue in a file_storage extension and retries without a time limit; no
processor that alters or drops records sits in an audit pipeline; ``${env:...}`` references expand
(as the Collector's confmap does) to values of the right type; and the compose stack references existing
files, pinned images, named volumes and healthchecks, with endpoints that match the configs.
What they cannot show is that the images pull and the containers start: that needs `docker compose up`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
import yaml

from otelcol_contrib_components import COMPONENTS, DEPRECATED_ALIASES, MANIFEST_MODULE_COUNTS, OTELCOL_CONTRIB_VERSION

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "collector-config"
COMPOSE_FILE = ROOT / "docker-compose.yml"
COLLECTOR_CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
KINDS = ("receivers", "processors", "exporters", "extensions", "connectors")

# Processors that edit or drop log records (or their resource): they make `auditel verify` report
# hash mismatches or gaps, so they must never sit in a pipeline that carries audit records.
FORBIDDEN_PROCESSORS = frozenset({
    "attributes", "transform", "redaction", "resource", "resource_detection", "k8s_attributes",
    "filter", "probabilistic_sampler", "tail_sampling", "log_dedup", "groupbyattrs", "schema",
    "span", "unroll", "gen_ai_normalizer", "cardinality_guardian", "drain", "isolationforest",
    "geoip", "sumologic", "coralogix", "remotetap", "interval",
    # An in-memory stage in front of the persistent queue loses acknowledged records on a crash.
    "batch",
})
ALLOWED_AUDIT_PROCESSORS = frozenset({"memory_limiter"})
# Exporters with no exporterhelper queue/retry in their config schema (fileexporter writes
# synchronously to local disk); everything else must queue on disk and retry forever.
EXPORTERS_WITHOUT_QUEUE = frozenset({"file"})

ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
WHOLE_ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}$")


def load(path: Path) -> Any:
    with path.open() as fh:
        return yaml.safe_load(fh)


def component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def expand_env(node: Any, env: dict[str, str]) -> Any:
    """Expand ``${env:NAME:-default}`` the way the Collector's confmap does.

    A value that is exactly one reference takes the YAML type of the expanded text (``true`` -> bool,
    ``4317`` -> int, quoted in the source -> still the whole-string rule); a reference inside a longer
    string is substituted as text.
    """
    if isinstance(node, dict):
        return {k: expand_env(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [expand_env(v, env) for v in node]
    if isinstance(node, str):
        whole = WHOLE_ENV_REF.match(node)
        if whole:
            name, default = whole.group(1), whole.group(2)
            return yaml.safe_load(env.get(name, default or ""))
        return ENV_REF.sub(lambda m: env.get(m.group(1), m.group(2) or ""), node)
    return node


def pipelines(cfg: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    return cfg["service"]["pipelines"]


def walk_retry_blocks(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            if key == "retry_on_failure" and isinstance(value, dict):
                yield sub, value
            yield from walk_retry_blocks(value, sub)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE_FILE)


def config_ids() -> list[str]:
    return [p.name for p in COLLECTOR_CONFIGS]


def test_the_expected_configs_exist() -> None:
    names = {p.name for p in COLLECTOR_CONFIGS}
    assert {"agent.yaml", "gateway.yaml"} <= names, names


def test_every_yaml_file_parses() -> None:
    files = [COMPOSE_FILE, *COLLECTOR_CONFIGS, *sorted((ROOT / "deploy").rglob("*.yaml")), *sorted((ROOT / "deploy").rglob("*.yml"))]
    assert len(files) >= 6
    for path in files:
        doc = load(path)
        assert isinstance(doc, dict) and doc, f"{path} is empty or not a mapping"


def test_pinned_component_list_matches_the_manifest_counts() -> None:
    for kind, count in MANIFEST_MODULE_COUNTS.items():
        assert len(COMPONENTS[kind]) == count, kind


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=config_ids())
def test_every_component_is_in_the_pinned_otelcol_contrib(path: Path) -> None:
    cfg = load(path)
    for section in KINDS:
        kind = section[:-1]
        for component_id in cfg.get(section) or {}:
            ctype = component_type(component_id)
            assert ctype not in DEPRECATED_ALIASES.get(kind, {}), (
                f"{path.name}: {section}.{component_id} uses the deprecated name {ctype!r}; "
                f"use {DEPRECATED_ALIASES[kind][ctype]!r}")
            assert ctype in COMPONENTS[kind], (
                f"{path.name}: {section}.{component_id}: {ctype!r} is not a {kind} of otelcol-contrib "
                f"{OTELCOL_CONTRIB_VERSION}")


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=config_ids())
def test_pipelines_reference_only_defined_components_and_use_all_of_them(path: Path) -> None:
    cfg = load(path)
    defined = {section: set(cfg.get(section) or {}) for section in KINDS}
    used: dict[str, set[str]] = {section: set() for section in KINDS}
    assert pipelines(cfg), f"{path.name}: no pipelines"
    for name, pipe in pipelines(cfg).items():
        assert name.split("/")[0] == "logs", f"{path.name}: pipeline {name} is not a logs pipeline"
        assert pipe.get("receivers") and pipe.get("exporters"), f"{path.name}: {name} needs receivers and exporters"
        for section in ("receivers", "processors", "exporters"):
            for component_id in pipe.get(section) or []:
                assert component_id in defined[section], f"{path.name}: {name} uses undefined {section[:-1]} {component_id}"
                used[section].add(component_id)
    enabled_extensions = cfg["service"].get("extensions") or []
    for ext in enabled_extensions:
        assert ext in defined["extensions"], f"{path.name}: service.extensions names undefined {ext}"
    assert set(enabled_extensions) == defined["extensions"], f"{path.name}: defined but not enabled: {defined['extensions'] - set(enabled_extensions)}"
    for section in ("receivers", "processors", "exporters"):
        assert used[section] == defined[section], f"{path.name}: {section} defined but unused: {defined[section] - used[section]}"
    assert any(component_type(e) == "health_check" for e in enabled_extensions), f"{path.name}: no health_check"


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=config_ids())
def test_every_exporter_queues_on_disk_and_retries_without_time_limit(path: Path) -> None:
    cfg = load(path)
    storages = {e for e in cfg.get("extensions") or {} if component_type(e) == "file_storage"}
    assert storages, f"{path.name}: no file_storage extension"
    for exporter_id, exp in (cfg.get("exporters") or {}).items():
        ctype = component_type(exporter_id)
        if ctype in EXPORTERS_WITHOUT_QUEUE:
            assert "sending_queue" not in exp and "retry_on_failure" not in exp, f"{exporter_id}: {ctype} has no queue settings"
            continue
        queue = exp.get("sending_queue")
        assert isinstance(queue, dict), f"{path.name}: {exporter_id} has no sending_queue"
        assert queue.get("enabled", True) is True, f"{path.name}: {exporter_id} queue disabled"
        assert queue.get("storage") in storages, f"{path.name}: {exporter_id} queue is not persisted in {storages}"
        assert queue.get("block_on_overflow") is True, f"{path.name}: {exporter_id} drops new data when full"
        retry = exp.get("retry_on_failure")
        assert isinstance(retry, dict), f"{path.name}: {exporter_id} has no retry_on_failure (default gives up after 5m)"
        assert retry.get("enabled", True) is True, f"{path.name}: {exporter_id} retry disabled"
        assert retry.get("max_elapsed_time") == 0, f"{path.name}: {exporter_id} max_elapsed_time must be 0"
    # Nested exporters (load_balancing's per-backend otlp) may disable retry and queue so failures go
    # back to the top-level durable queue, but an enabled retry anywhere must never time out.
    for where, retry in walk_retry_blocks(cfg.get("exporters") or {}):
        if retry.get("enabled", True):
            assert retry.get("max_elapsed_time") == 0, f"{path.name}: {where} gives up after a while"


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=config_ids())
def test_no_processor_that_alters_or_drops_records_in_audit_pipelines(path: Path) -> None:
    cfg = load(path)
    for component_id in cfg.get("processors") or {}:
        assert component_type(component_id) not in FORBIDDEN_PROCESSORS, f"{path.name}: defines {component_id}"
    for name, pipe in pipelines(cfg).items():
        for component_id in pipe.get("processors") or []:
            assert component_type(component_id) in ALLOWED_AUDIT_PROCESSORS, f"{path.name}: {name} has {component_id}"
        assert [component_type(p) for p in pipe.get("processors") or []][:1] == ["memory_limiter"], (
            f"{path.name}: {name} must start with memory_limiter")


@pytest.mark.parametrize("path", [p for p in COLLECTOR_CONFIGS if p.name.startswith("gateway")], ids=lambda p: p.name)
def test_gateway_fans_out_to_a_store_and_an_archive(path: Path) -> None:
    exporters = [component_type(e) for e in pipelines(load(path))["logs/audit"]["exporters"]]
    assert len(exporters) >= 2
    assert "file" in exporters, "no long-term archive"
    assert {"otlp_http", "clickhouse", "elasticsearch", "opensearch"} & set(exporters), "no searchable store"


def test_gateway_comments_name_the_processors_that_break_verify() -> None:
    text = (CONFIG_DIR / "gateway.yaml").read_text()
    for word in ("attributes", "transform", "redaction", "resource", "filter", "batch", "auditel verify"):
        assert word in text, word


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=config_ids())
def test_env_references_have_defaults_and_expand_to_the_right_types(path: Path) -> None:
    text = path.read_text()
    refs = ENV_REF.findall(text)
    assert refs, f"{path.name}: expected configurable endpoints"
    for name, default in refs:
        assert default != "" or name.endswith("PASSWORD"), f"{path.name}: ${{env:{name}}} has no default"
    bare = re.findall(r"\$\{(?!env:)[^}]*\}", text)
    assert not bare, f"{path.name}: use ${{env:NAME:-default}}, not {bare}"
    cfg = expand_env(load(path), {})
    assert "${" not in yaml.safe_dump(cfg)
    for exporter_id, exp in cfg["exporters"].items():
        tls = exp.get("tls") or (exp.get("protocol", {}).get("otlp", {}) or {}).get("tls")
        if tls is not None:
            assert tls["insecure"] is False, f"{exporter_id}: TLS must be on by default"
        dns = ((exp.get("resolver") or {}).get("dns")) or {}
        if dns:
            assert isinstance(dns["port"], str), "load_balancing dns.port must decode as a string (0.153.0+)"
        if "ttl" in exp:
            assert re.fullmatch(r"\d+[smh]", str(exp["ttl"])), exp["ttl"]
    for ext_id, ext in cfg["extensions"].items():
        if component_type(ext_id) == "file_storage":
            assert ext["directory"].startswith("/var/lib/otelcol/")
            assert ext["fsync"] is True
            assert ext["compaction"]["directory"] == ext["directory"]


# --------------------------------------------------------------------------- docker-compose stack


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def image_is_pinned(ref: str) -> bool:
    if "@sha256:" in ref:
        return True
    name, _, tag = ref.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest") and any(ch.isdigit() for ch in tag)


def dockerfile_base_images(path: Path) -> list[str]:
    args: dict[str, str] = {}
    images = []
    for line in path.read_text().splitlines():
        words = line.strip().split()
        if not words:
            continue
        if words[0].upper() == "ARG" and "=" in words[1]:
            key, _, value = words[1].partition("=")
            args.setdefault(key, value)
        if words[0].upper() == "FROM":
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[1]))
    return images


def build_of(service: dict[str, Any]) -> tuple[Path, Path] | None:
    build = service.get("build")
    if build is None:
        return None
    context = ROOT / build["context"]
    return context, context / build.get("dockerfile", "Dockerfile")


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for vol in service.get("volumes") or []:
        source, target = vol.split(":")[:2]
        out.append((source, target))
    return out


def collector_config_of(service: dict[str, Any]) -> Path | None:
    command = service.get("command") or []
    if "--config" not in command:
        return None
    target = command[command.index("--config") + 1]
    for source, mount_target in bind_mounts(service):
        if mount_target == target:
            return (ROOT / source).resolve()
    raise AssertionError(f"--config {target} is not mounted")


def test_compose_has_the_demo_tiers(compose: dict[str, Any]) -> None:
    assert {"demo-agent", "otel-agent", "gateway", "loki", "grafana"} <= set(services(compose))


def test_compose_images_and_base_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, svc in services(compose).items():
        if "image" in svc:
            assert image_is_pinned(svc["image"]), f"{name}: {svc['image']} is not pinned"
        built = build_of(svc)
        assert "image" in svc or built, f"{name}: neither image nor build"
        if built:
            context, dockerfile = built
            assert context.is_dir() and dockerfile.is_file(), f"{name}: {dockerfile} missing"
            bases = dockerfile_base_images(dockerfile)
            assert bases, f"{dockerfile}: no FROM"
            for base in bases:
                assert image_is_pinned(base), f"{dockerfile}: base image {base} is not pinned"


def test_collector_image_is_the_pinned_otelcol_contrib(compose: dict[str, Any]) -> None:
    for name in ("otel-agent", "gateway"):
        _, dockerfile = build_of(services(compose)[name])  # type: ignore[misc]
        assert f"otel/opentelemetry-collector-contrib:{OTELCOL_CONTRIB_VERSION}" in dockerfile_base_images(dockerfile)
        assert services(compose)[name]["build"]["args"]["OTELCOL_VERSION"] == OTELCOL_CONTRIB_VERSION


def test_dockerfile_copy_sources_exist(compose: dict[str, Any]) -> None:
    for name, svc in services(compose).items():
        built = build_of(svc)
        if not built:
            continue
        context, dockerfile = built
        for line in dockerfile.read_text().splitlines():
            words = line.split()
            if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
                for source in [w for w in words[1:-1] if not w.startswith("--")]:
                    assert (context / source).exists(), f"{dockerfile}: COPY source {source} missing"


def test_compose_healthchecks_everywhere_and_dependencies_wait_for_them(compose: dict[str, Any]) -> None:
    svcs = services(compose)
    for name, svc in svcs.items():
        check = svc.get("healthcheck")
        assert check and check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in svcs, f"{name} depends on unknown {dep}"
            assert cond == {"condition": "service_healthy"}, f"{name} -> {dep}: {cond}"


def test_collector_healthchecks_probe_the_health_check_extension(compose: dict[str, Any]) -> None:
    for name, svc in services(compose).items():
        config_path = collector_config_of(svc)
        if config_path is None:
            continue
        cfg = expand_env(load(config_path), {k: str(v) for k, v in (svc.get("environment") or {}).items()})
        port = int(cfg["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1])
        url = next(arg for arg in svc["healthcheck"]["test"] if arg.startswith("http"))
        assert urlsplit(url).port == port, f"{name}: probes {url}, health_check listens on {port}"


def test_compose_bind_mounts_exist_and_collectors_run_our_configs(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    configs_used = set()
    for name, svc in services(compose).items():
        for source, _target in bind_mounts(svc):
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: bind mount {source} missing"
            else:
                assert source in declared, f"{name}: volume {source} is not a declared named volume"
        config_path = collector_config_of(svc)
        if config_path is not None:
            assert config_path.parent == CONFIG_DIR.resolve(), config_path
            configs_used.add(config_path.name)
    assert configs_used == {"agent.yaml", "gateway.yaml"}


def test_compose_named_volumes_are_declared_used_and_hold_every_queue(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = {source for svc in services(compose).values() for source, _ in bind_mounts(svc) if not source.startswith(".")}
    assert used == declared, f"declared but unused: {declared - used}; used but undeclared: {used - declared}"
    for name, svc in services(compose).items():
        named_targets = {target for source, target in bind_mounts(svc) if not source.startswith(".")}
        config_path = collector_config_of(svc)
        if config_path is not None:
            cfg = expand_env(load(config_path), {k: str(v) for k, v in (svc.get("environment") or {}).items()})
            for ext_id, ext in cfg["extensions"].items():
                if component_type(ext_id) == "file_storage":
                    assert ext["directory"] in named_targets, f"{name}: queue dir {ext['directory']} not on a named volume"
            for exp_id, exp in cfg["exporters"].items():
                if component_type(exp_id) == "file":
                    assert str(Path(exp["path"]).parent) in named_targets, f"{name}: archive not on a named volume"
    agent_env = services(compose)["demo-agent"]["environment"]
    assert str(Path(agent_env["AUDITEL_OUTBOX"]).parent) in {t for s, t in bind_mounts(services(compose)["demo-agent"])}


def test_compose_wiring_matches_the_collector_configs(compose: dict[str, Any]) -> None:
    svcs = services(compose)
    agent_cfg = expand_env(load(CONFIG_DIR / "agent.yaml"), {k: str(v) for k, v in svcs["otel-agent"]["environment"].items()})
    gateway_cfg = expand_env(load(CONFIG_DIR / "gateway.yaml"), {k: str(v) for k, v in svcs["gateway"]["environment"].items()})

    app = urlsplit(svcs["demo-agent"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
    agent_http = agent_cfg["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert (app.hostname, app.port) == ("otel-agent", int(agent_http.rsplit(":", 1)[1]))
    assert svcs["demo-agent"]["environment"]["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"

    to_gateway = agent_cfg["exporters"]["otlp_grpc/gateway"]
    host, port = to_gateway["endpoint"].rsplit(":", 1)
    gateway_grpc = gateway_cfg["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert (host, int(port)) == ("gateway", int(gateway_grpc.rsplit(":", 1)[1]))
    assert to_gateway["tls"]["insecure"] is True  # compose network only; the default stays TLS

    loki = urlsplit(gateway_cfg["exporters"]["otlp_http/loki"]["endpoint"])
    loki_cfg = load(ROOT / "deploy/loki/loki.yaml")
    assert (loki.hostname, loki.port, loki.path) == ("loki", loki_cfg["server"]["http_listen_port"], "/otlp")
    assert svcs["loki"]["command"] == ["-config.file=/etc/loki/loki.yaml"]


def test_loki_accepts_otlp_and_keeps_attributes(compose: dict[str, Any]) -> None:
    loki_cfg = load(ROOT / "deploy/loki/loki.yaml")
    assert loki_cfg["limits_config"]["allow_structured_metadata"] is True
    schema = loki_cfg["schema_config"]["configs"][-1]
    assert (schema["store"], schema["schema"]) == ("tsdb", "v13")  # structured metadata needs tsdb v13
    data_mount = {t for s, t in bind_mounts(services(compose)["loki"]) if not s.startswith(".")}
    assert loki_cfg["common"]["path_prefix"] in data_mount


def test_grafana_provisions_the_loki_datasource(compose: dict[str, Any]) -> None:
    mounts = dict((t, s) for s, t in bind_mounts(services(compose)["grafana"]))
    provisioning = ROOT / mounts["/etc/grafana/provisioning"]
    sources = [ds for f in sorted(provisioning.glob("datasources/*.yaml")) for ds in load(f)["datasources"]]
    loki = [ds for ds in sources if ds["type"] == "loki"]
    assert len(loki) == 1
    url = urlsplit(loki[0]["url"])
    assert (url.hostname, url.port) == ("loki", load(ROOT / "deploy/loki/loki.yaml")["server"]["http_listen_port"])


def test_demo_agent_loop_script_is_valid_sh_and_runs_auditel_demo() -> None:
    script = ROOT / "deploy/demo-agent/run-demo-loop.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["sh", "-n", str(script)], check=True)
    assert "auditel demo" in script.read_text()


def test_the_demo_agent_container_commands_work(tmp_path: Path) -> None:
    """Runs what the demo container runs (`auditel demo`, healthcheck `auditel status --json`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    env["AUDITEL_OUTBOX"] = str(tmp_path / "auditel" / "outbox.db")
    auditel_cli = [str(Path(sys.executable).with_name("auditel"))]  # the console script the image runs
    # as deploy/demo-agent/run-demo-loop.sh runs it: the demo's own outbox is the one AUDITEL_OUTBOX names
    demo_cmd = [*auditel_cli, "--outbox", env["AUDITEL_OUTBOX"], "demo", "--ship"]
    assert '"${AUDITEL_OUTBOX:?}" demo --ship' in (ROOT / "deploy" / "demo-agent" / "run-demo-loop.sh").read_text()
    demo = subprocess.run(demo_cmd, env=env, capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr
    assert "audit records" in demo.stdout and "auditel verify: OK" in demo.stdout
    status = subprocess.run([*auditel_cli, "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert '"records_total"' in status.stdout
    healthcheck = services(load(COMPOSE_FILE))["demo-agent"]["healthcheck"]["test"]
    assert healthcheck[1:] == ["auditel", "status", "--json"], shlex.join(healthcheck)

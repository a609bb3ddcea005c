"""The files of collector-config/: every YAML parses; every collector pipeline uses only components that are
defined and every defined component is used; the sampling keeps failed and costly sessions; the content-stripping
processor deletes every content attribute agentotel knows; the compose file's mounts and ports hold together.
(Docker does not run on this project's machines: the stack itself is not started here.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentotel import semconv as sc
from agentotel.conventions import CONTENT_EVENTS, CONTENT_PREFIXES

CONFIG = Path(__file__).resolve().parents[2] / "collector-config"
YAMLS = sorted(CONFIG.glob("*.yaml"))
SECTIONS = ("receivers", "processors", "exporters", "connectors", "extensions")


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path.name} is not a YAML mapping"
    return document


def _collector_configs() -> list[Path]:
    return [p for p in YAMLS if "pipelines" in (_load(p).get("service") or {})]


def _kind(component: str) -> str:
    """`transform/strip-content` -> `transform`."""
    return component.split("/", 1)[0]


def _components(config: dict[str, Any], kind: str) -> dict[str, Any]:
    return {
        name: value
        for section in SECTIONS
        for name, value in (config.get(section) or {}).items()
        if _kind(name) == kind
    }


def test_the_folder_has_a_collector_config_and_a_compose_file() -> None:
    names = {p.name for p in YAMLS}
    assert {"otelcol.yaml", "docker-compose.yaml", "tempo.yaml"} <= names
    assert (CONFIG / "README.md").is_file()
    assert _collector_configs()


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.name)
def test_every_yaml_parses(path: Path) -> None:
    assert _load(path)


@pytest.mark.parametrize("path", _collector_configs(), ids=lambda p: p.name)
def test_pipelines_use_defined_components_and_every_component_is_used(path: Path) -> None:
    config = _load(path)
    defined = {section: set(config.get(section) or {}) for section in SECTIONS}
    pipelines: dict[str, dict[str, list[str]]] = config["service"]["pipelines"]
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, pipeline in pipelines.items():
        assert _kind(name) == "traces", f"{name}: these configurations are for traces"
        assert pipeline.get("receivers"), f"{name} has no receivers"
        assert pipeline.get("exporters"), f"{name} has no exporters"
        for role in used:
            for component in pipeline.get(role) or []:
                allowed = defined[role] | (defined["connectors"] if role != "processors" else set())
                assert component in allowed, f"{path.name}: pipeline {name} uses {component!r}, not defined in {role}"
                used[role].add(component)
        processors = pipeline.get("processors") or []
        if "memory_limiter" in processors:
            assert processors[0] == "memory_limiter", f"{name}: memory_limiter must come first"
        if "batch" in processors:
            assert processors[-1] == "batch", f"{name}: batch must come last"
    for role in used:
        unused = defined[role] - used[role]
        assert not unused, f"{path.name}: {role} defined but in no pipeline: {sorted(unused)}"
    for connector in defined["connectors"]:
        assert connector in used["exporters"] and connector in used["receivers"], f"connector {connector} is half-wired"
    assert set(config["service"].get("extensions") or []) == defined["extensions"]


def test_tail_sampling_keeps_failed_and_costly_sessions_and_samples_the_rest() -> None:
    (sampling,) = _components(_load(CONFIG / "otelcol.yaml"), "tail_sampling").values()
    policies = {p["type"]: p for p in sampling["policies"]}
    failed = policies["string_attribute"]["string_attribute"]
    assert failed["key"] == sc.AGENTOTEL_SESSION_END_STATE
    assert failed["values"] == [sc.AGENTOTEL_SESSION_END_STATE_VALUE_FAIL]
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    (costly,) = policies["ottl_condition"]["ottl_condition"]["span"]
    assert re.fullmatch(rf'attributes\["{re.escape(sc.AGENTOTEL_SESSION_COST_AMOUNT)}"\] > \d+(\.\d+)?', costly)
    assert 0 < policies["probabilistic"]["probabilistic"]["sampling_percentage"] < 100


def test_content_stripping_deletes_every_content_attribute() -> None:
    config = _load(CONFIG / "otelcol.yaml")
    (strip,) = _components(config, "transform").values()
    by_context = {group["context"]: group["statements"] for group in strip["trace_statements"]}
    for context in ("span", "spanevent"):
        deleted = {
            m.group(1)
            for s in by_context[context]
            for m in [re.fullmatch(r'delete_key\(attributes, "([^"]+)"\)', s)]
            if m
        }
        assert deleted == set(sc.CONTENT_ATTRIBUTES), f"{context}: {sorted(set(sc.CONTENT_ATTRIBUTES) ^ deleted)}"
        patterns = {
            m.group(1)
            for s in by_context[context]
            for m in [re.fullmatch(r'delete_matching_keys\(attributes, "([^"]+)"\)', s)]
            if m
        }
        # Every family of indexed content attributes, each pattern matching its prefix (dots as `[.]`: no escapes
        # for YAML and OTTL to disagree on), and nothing else.
        assert patterns == {"^" + prefix.replace(".", "[.]") for prefix in CONTENT_PREFIXES}, context
        for pattern in patterns:
            assert not re.match(pattern, "gen_ai.request.model"), pattern
    (events,) = _components(config, "filter").values()
    (condition,) = events["traces"]["spanevent"]
    assert set(re.findall(r'name == "([^"]+)"', condition)) == set(CONTENT_EVENTS)
    stripping = [
        n
        for n, p in config["service"]["pipelines"].items()
        if {"transform/strip-content", "filter/strip-content-events"} <= set(p.get("processors", []))
    ]
    assert stripping, "no pipeline strips content"


def test_the_compose_file_mounts_files_that_exist_and_documents_its_ports() -> None:
    compose = _load(CONFIG / "docker-compose.yaml")
    readme = (CONFIG / "README.md").read_text()
    services = compose["services"]
    assert {"otel-collector", "jaeger", "tempo", "grafana"} <= set(services)
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (CONFIG / source).is_file(), f"{name} mounts {source}, which is not in collector-config/"
        for dependency in service.get("depends_on") or []:
            assert dependency in services
        for port in service.get("ports") or []:
            host = str(port).split(":", 1)[0]
            assert f"`{host}`" in readme, f"port {host} of {name} is not documented in collector-config/README.md"
    collector = _load(CONFIG / "otelcol.yaml")
    endpoints = {e["endpoint"].split(":")[0] for n, e in collector["exporters"].items() if _kind(n) == "otlp"}
    assert endpoints <= set(services), "the collector exports to a host the compose file does not start"

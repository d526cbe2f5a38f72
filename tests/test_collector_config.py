"""The collector-config/ files parse, use only real components, and fit together."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "collector-config"
KINDS = {
    "receivers": "receiver",
    "processors": "processor",
    "exporters": "exporter",
    "extensions": "extension",
    "connectors": "connector",
}


def _load(name: str) -> Any:
    return yaml.safe_load((CONFIG_DIR / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data: dict[str, Any] = _load("otelcol-contrib-0.136.0-components.yaml")
    return data


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    data: dict[str, Any] = _load("otel-collector.yaml")
    return data


def unknown_components(config: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """Component ids of ``config`` whose type no module of the pinned release provides.

    A component id is ``type[/name]``; the builder manifest lists Go modules whose last path
    element is the type without underscores plus the kind (``memory_limiter`` ->
    ``memorylimiterprocessor``, ``health_check`` -> ``healthcheckextension``).
    """
    unknown: list[str] = []
    for section, kind in KINDS.items():
        modules = {path.rsplit("/", 1)[-1] for path in manifest.get(section) or []}
        for component_id in config.get(section) or {}:
            component_type = component_id.split("/", 1)[0]
            if component_type.replace("_", "") + kind not in modules:
                unknown.append(f"{section}: {component_id}")
    return unknown


def test_manifest_names_its_source_and_lists_the_core_components(manifest: dict[str, Any]) -> None:
    assert manifest["release"] == "0.136.0"
    assert manifest["source"]["repository"] == "open-telemetry/opentelemetry-collector-releases"
    assert manifest["source"]["path"] == "distributions/otelcol-contrib/manifest.yaml"
    assert re.fullmatch(r"[0-9a-f]{40}", manifest["source"]["commit"])
    assert "go.opentelemetry.io/collector/receiver/otlpreceiver" in manifest["receivers"]
    for section in KINDS:
        paths = manifest[section]
        assert paths and len(paths) == len(set(paths)), section


def test_collector_config_names_only_components_of_the_pinned_release(
    collector: dict[str, Any], manifest: dict[str, Any]
) -> None:
    assert unknown_components(collector, manifest) == []


def test_the_check_rejects_components_the_release_does_not_have(manifest: dict[str, Any]) -> None:
    config: dict[str, Any] = {
        "receivers": {"otlp": {}},
        "processors": {"memory_limiter": {}, "spanmetrics": {}},  # a connector, not a processor
        "exporters": {"jaeger": {}, "otlp/tempo": {}},  # removed from contrib in 2023
        "extensions": {"health_check": {}},
    }
    assert unknown_components(config, manifest) == [
        "processors: spanmetrics",
        "exporters: jaeger",
    ]


def test_pipeline_receives_otlp_on_all_interfaces_and_exports_to_jaeger_and_tempo(
    collector: dict[str, Any],
) -> None:
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"

    pipeline = collector["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert pipeline["processors"] == ["memory_limiter", "batch"], "memory_limiter must come first"
    assert set(pipeline["exporters"]) == {"otlp/jaeger", "otlp/tempo"}
    assert collector["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    assert collector["exporters"]["otlp/tempo"]["endpoint"] == "tempo:4317"

    for section in ("receivers", "processors", "exporters"):
        for pipeline_def in collector["service"]["pipelines"].values():
            for component_id in pipeline_def.get(section, []):
                assert component_id in collector[section], f"{component_id} is not defined"
    for extension in collector["service"].get("extensions", []):
        assert extension in collector["extensions"]


def test_tempo_lets_payload_refs_and_truncated_content_through() -> None:
    tempo = _load("tempo.yaml")
    receivers = tempo["distributor"]["receivers"]["otlp"]["protocols"]
    assert receivers["grpc"]["endpoint"] == "0.0.0.0:4317"
    limit = tempo["distributor"]["max_attribute_bytes"]
    assert limit == 0 or limit >= 16 * 1024, "Tempo's 2048-byte default cuts previews"
    assert "max_span_attr_byte" not in tempo["distributor"], "renamed in Tempo 2.8"
    assert tempo["overrides"]["defaults"]["global"]["max_bytes_per_trace"] > 5_000_000


def test_grafana_provisions_tempo_as_the_default_trace_source() -> None:
    datasources = _load("grafana-datasources.yaml")["datasources"]
    tempo = next(source for source in datasources if source["type"] == "tempo")
    assert tempo["url"] == "http://tempo:3200"
    assert tempo["isDefault"] is True


def test_compose_pins_every_image_and_mounts_files_that_exist(manifest: dict[str, Any]) -> None:
    compose = _load("docker-compose.yml")
    services = compose["services"]
    assert {"otel-collector", "jaeger", "tempo", "grafana"} <= set(services)
    for name, service in services.items():
        image = service["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name}: image {image} is not pinned"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (CONFIG_DIR / source).is_file(), f"{name} mounts missing {source}"
    collector_image = services["otel-collector"]["image"]
    assert collector_image == f"otel/opentelemetry-collector-contrib:{manifest['release']}"
    mounted = [v.split(":")[1] for v in services["otel-collector"]["volumes"]]
    assert "/etc/otelcol-contrib/config.yaml" in mounted

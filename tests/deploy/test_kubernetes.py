"""The Kubernetes path: Argo Rollouts blue/green manifests, checked for what deploys rely on."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from traffic_forecast.cli import COMMANDS
from traffic_forecast.core.config import Config
from traffic_forecast.deploy.kubernetes import LIVE_SECRET, PORT, manifests, render
from traffic_forecast.serving.ingest import TOKEN_ENV
from traffic_forecast.serving.live import STORE_ENV

COMMITTED = REPO_ROOT / "deploy" / "kubernetes" / "traffic-forecast.yaml"


@pytest.fixture(scope="module")
def objects(base_config: Config) -> dict[str, dict[str, Any]]:
    return {f"{m['kind']}/{m['metadata']['name']}": m for m in manifests(base_config)}


def _rollout(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return objects["Rollout/traffic-forecast"]


def test_blue_green_switches_services_after_the_analysis(
    objects: dict[str, dict[str, Any]],
) -> None:
    strategy = _rollout(objects)["spec"]["strategy"]
    assert set(strategy) == {"blueGreen"}
    blue_green = strategy["blueGreen"]
    for role in ("activeService", "previewService"):
        assert f"Service/{blue_green[role]}" in objects
    templates = [t["templateName"] for t in blue_green["prePromotionAnalysis"]["templates"]]
    assert templates == ["traffic-forecast-smoke", "traffic-forecast-validation"]
    for name in templates:
        assert f"AnalysisTemplate/{name}" in objects


def test_the_analysis_runs_the_same_gates_as_the_one_machine_tooling(
    objects: dict[str, dict[str, Any]], base_config: Config
) -> None:
    for name in ("traffic-forecast-smoke", "traffic-forecast-validation"):
        job = objects[f"AnalysisTemplate/{name}"]["spec"]["metrics"][0]["provider"]["job"]
        container = job["spec"]["template"]["spec"]["containers"][0]
        command = container["command"]
        assert command[:3] == ["python", "-m", "traffic_forecast.cli"]
        assert command[3] in COMMANDS
        assert "{{args.preview}}" in command
        assert container["image"] == base_config.deploy.image
    validation = objects["AnalysisTemplate/traffic-forecast-validation"]["spec"]["metrics"][0]
    assert (
        "{{args.active}}"
        in validation["provider"]["job"]["spec"]["template"]["spec"]["containers"][0]["command"]
    )


def test_probes_drain_and_grace_period(objects: dict[str, dict[str, Any]]) -> None:
    spec = _rollout(objects)["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": PORT}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": PORT}
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pause > 0
    assert spec["terminationGracePeriodSeconds"] > pause  # BentoML gets time to stop after it


def test_the_config_drives_replicas_image_and_rollback_window(base_config: Config) -> None:
    deploy = dataclasses.replace(
        base_config.deploy, replicas=5, image="registry.example/tf:1.2", rollback_window_s=120
    )
    rollout = manifests(dataclasses.replace(base_config, deploy=deploy))[0]["spec"]
    assert rollout["replicas"] == 5
    assert rollout["template"]["spec"]["containers"][0]["image"] == "registry.example/tf:1.2"
    assert rollout["strategy"]["blueGreen"]["scaleDownDelaySeconds"] == 120


def test_services_select_the_pods_on_their_port(objects: dict[str, dict[str, Any]]) -> None:
    labels = _rollout(objects)["spec"]["template"]["metadata"]["labels"]
    for name in ("traffic-forecast-active", "traffic-forecast-preview"):
        spec = objects[f"Service/{name}"]["spec"]
        assert spec["selector"].items() <= labels.items()
        assert spec["ports"][0]["targetPort"] == PORT


def test_the_committed_manifests_are_what_conf_generates(base_config: Config) -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(base_config), (
        "deploy/kubernetes/traffic-forecast.yaml is stale: run `make k8s` and commit it"
    )
    assert len(list(yaml.safe_load_all(COMMITTED.read_text(encoding="utf-8")))) == 5


def test_replicas_read_the_live_store_and_token_from_a_secret(
    objects: dict[str, dict[str, Any]],
) -> None:
    container = _rollout(objects)["spec"]["template"]["spec"]["containers"][0]
    refs = {
        env["name"]: env["valueFrom"]["secretKeyRef"]
        for env in container["env"]
        if "valueFrom" in env
    }
    assert set(refs) == {STORE_ENV, TOKEN_ENV}
    assert all(ref["name"] == LIVE_SECRET and ref["optional"] for ref in refs.values())
    assert not any("value" in env and "postgresql" in env["value"] for env in container["env"])

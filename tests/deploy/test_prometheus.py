"""The local Prometheus's config (it runs for real in tests/experiment/test_live.py).

promtool accepts it, with the rules, and its jobs read the targets the deploy state writes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.deploy.promtool import promtool
from tests.serving.server import free_port
from traffic_forecast.core.config import Config, PrometheusConfig
from traffic_forecast.deploy import prometheus
from traffic_forecast.deploy.state import DeployError, RouterAddress, Slot, State, save


def test_the_config_promtool_accepts_scrapes_the_deployment_with_the_rules(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    save(
        state_dir,
        State(
            "blue", {"blue": Slot("b", "m", 3001, 1, 0.0)}, router=RouterAddress("127.0.0.1", 8080)
        ),
    )
    cfg = PrometheusConfig(scrape_interval_s=1, evaluation_interval_s=0.5)
    text = prometheus.render(cfg, state_dir, REPO_ROOT / "deploy/prometheus/rules.yml")
    config = yaml.safe_load(text)
    assert config["global"] == {
        "scrape_interval": "1000ms",
        "scrape_timeout": "1000ms",
        "evaluation_interval": "500ms",
    }
    jobs = {job["job_name"]: job["file_sd_configs"][0]["files"] for job in config["scrape_configs"]}
    assert jobs == {
        "traffic-forecast": [str(state_dir / "scrape" / "slots.json")],
        "traffic-forecast-router": [str(state_dir / "scrape" / "router.json")],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(text, encoding="utf-8")
    checked = promtool("check", "config", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 20 rules found" in checked.stdout


def test_rules_promtool_refuses_never_reach_prometheus(tmp_path: Path, base_config: Config) -> None:
    broken = tmp_path / "rules.yml"
    broken.write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m]) >\n",
        encoding="utf-8",
    )
    cfg = dataclasses.replace(
        base_config,
        deploy=dataclasses.replace(base_config.deploy, state_dir=str(tmp_path / "state")),
        prometheus=dataclasses.replace(base_config.prometheus, rules=str(broken), port=free_port()),
    )
    with pytest.raises(DeployError, match="promtool check config"):
        prometheus.start(cfg)
    folder = tmp_path / "state" / prometheus.FOLDER
    assert not (folder / "prometheus.yml").exists()
    assert not (folder / prometheus.PID_FILE).exists()
    with pytest.raises(DeployError, match="not running"):
        prometheus.status(cfg)
    assert prometheus.stop(cfg) is False

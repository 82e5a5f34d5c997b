"""The alerting rules, held by promtool and to conf/ and the README.

promtool checks and tests them; every alert fires and stays quiet in those tests; each
threshold and `for` is pinned by a case (a rule nudged below it fails them); the thresholds
conf/ also holds agree with it; every runbook is a README section.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.deploy.promtool import promtool
from traffic_forecast.core.config import Config
from traffic_forecast.deploy import alerts

RULES = REPO_ROOT / alerts.RULES
TEST_FILES = (RULES.parent / "tests.yml", RULES.parent / "tests-weekly.yml")
SEVERITIES = {"page", "ticket"}
DURATION = re.compile(r"^(\d+)([smh])$")
SECONDS = {"s": 1, "m": 60, "h": 3600}


def _cases() -> dict[str, list[tuple[Path, dict[str, Any], dict[str, Any]]]]:
    """Alert name → (test file, test, one alert_rule_test case)."""
    found: dict[str, list[tuple[Path, dict[str, Any], dict[str, Any]]]] = {}
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for case in test.get("alert_rule_test", []):
                found.setdefault(case["alertname"], []).append((path, test, case))
    return found


def _seconds(duration: str) -> int:
    matched = DURATION.match(duration)
    assert matched, duration
    return int(matched[1]) * SECONDS[matched[2]]


def test_promtool_finds_the_rules_valid_and_their_tests_passing() -> None:
    checked = promtool("check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 20 rules found" in checked.stdout
    tested = promtool("test", "rules", *TEST_FILES)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_severity_a_summary_and_a_readme_runbook() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", readme, flags=re.MULTILINE)
    }
    listed = alerts.alerts(RULES)
    assert len(listed) == 14
    for alert in listed:
        assert alert.severity in SEVERITIES, alert
        assert alert.runbook == f"README.md#{alert.name.lower()}", alert
        assert alert.name.lower() in anchors, f"no README section {alert.name}"
    for group in alerts.groups(RULES):
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["annotations"]["summary"], rule["alert"]


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases = _cases()
    for alert in alerts.alerts(RULES):
        kinds = {bool(case.get("exp_alerts")) for _, _, case in cases.get(alert.name, [])}
        assert kinds == {True, False}, f"{alert.name}: firing and quiet cases, found {kinds}"


def _nudged(alert: alerts.Alert, rule: dict[str, Any], step: int) -> list[tuple[str, Any]]:
    """The rule changed so that a case at its boundary must fail: threshold or `for` lowered."""
    changes: list[tuple[str, Any]] = []
    if alert.threshold is not None:
        lowered = alert.threshold - max(abs(alert.threshold) * 0.01, 1e-3)
        changes.append(("expr", alerts.THRESHOLD.sub(f"> {lowered!r}", rule["expr"])))
    if "for" in rule:
        changes.append(("for", f"{_seconds(rule['for']) - step}s"))
    return changes


def test_each_threshold_and_for_is_pinned_by_a_case(tmp_path: Path) -> None:
    """Lowering any alert's threshold, or its `for` by one evaluation, makes promtool fail.

    So a quiet case sits at the threshold itself, and a case a step before the `for` ends.
    Each change is tried alone against the tests of its alert.
    """
    cases = _cases()
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    tried = 0
    for alert in alerts.alerts(RULES):
        path, _, _ = cases[alert.name][0]
        suite = yaml.safe_load(path.read_text(encoding="utf-8"))
        step = _seconds(suite["evaluation_interval"])
        mine = [
            t
            for t in suite["tests"]
            if any(c["alertname"] == alert.name for c in t.get("alert_rule_test", []))
        ]
        rule = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == alert.name)
        for key, value in _nudged(alert, rule, step):
            changed = yaml.safe_load(RULES.read_text(encoding="utf-8"))
            for group in changed["groups"]:
                for r in group["rules"]:
                    if r.get("alert") == alert.name:
                        r[key] = value
            folder = tmp_path / f"{alert.name}-{key}"
            folder.mkdir()
            (folder / "rules.yml").write_text(yaml.safe_dump(changed), encoding="utf-8")
            (folder / "tests.yml").write_text(
                yaml.safe_dump(suite | {"tests": mine}), encoding="utf-8"
            )
            result = promtool("test", "rules", folder / "tests.yml")
            assert result.returncode != 0, f"{alert.name}: {key}={value} passes every case"
            tried += 1
    assert tried == 24  # 12 thresholds (Down and SlotDown test `== 0`), 12 `for`s


def test_thresholds_conf_also_holds_agree_with_it(base_config: Config) -> None:
    threshold = {a.name: a.threshold for a in alerts.alerts(RULES)}
    guardrails = base_config.experiment.guardrails
    assert threshold["TrafficForecastDataStale"] == base_config.serving.max_data_age_hours
    assert threshold["TrafficForecastChallengerErrorRate"] == guardrails.max_error_rate
    assert threshold["TrafficForecastChallengerLatencyP99"] == guardrails.max_p99_ms / 1000
    assert threshold["TrafficForecastChallengerFallbackShare"] == guardrails.max_fallback_share


@pytest.mark.parametrize("path", [alerts.MONITORING, alerts.DASHBOARD], ids=str)
def test_what_derives_from_the_rules_is_current(path: Path) -> None:
    assert (REPO_ROOT / path).read_text(encoding="utf-8") == alerts.rendered(RULES)[path], (
        f"{path} is not what deploy/prometheus/rules.yml gives: run `traffic-forecast alerts`"
    )
    assert alerts.stale(REPO_ROOT) == []


def test_the_kubernetes_rules_are_the_rules_and_the_pod_monitor_names_their_job() -> None:
    monitor, rule = yaml.safe_load_all((REPO_ROOT / alerts.MONITORING).read_text(encoding="utf-8"))
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == alerts.groups(RULES)
    assert monitor["kind"] == "PodMonitor"
    relabel = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"][0]
    assert relabel == {"targetLabel": "job", "replacement": "traffic-forecast"}
    rollout = next(
        yaml.safe_load_all((REPO_ROOT / "deploy/kubernetes/traffic-forecast.yaml").read_text())
    )
    ports = rollout["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in {p["name"] for p in ports}
    assert monitor["spec"]["selector"]["matchLabels"] == rollout["spec"]["selector"]["matchLabels"]

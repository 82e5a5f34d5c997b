"""The router's nginx config: rendered from a route, and accepted by the real nginx -t."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from traffic_forecast.core.config import DeployConfig
from traffic_forecast.deploy.router import TEMP_DIRS, Route, Router, render
from traffic_forecast.deploy.state import DeployError

CFG = DeployConfig(router_port=18080, blue_port=13001, green_port=13002)
needs_nginx = pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
    reason="nginx is not installed (make system-deps)",
)


def _upstream(conf: str) -> list[str]:
    block = conf.split("upstream traffic_forecast {")[1].split("}", maxsplit=1)[0]
    return [line.strip() for line in block.splitlines() if line.strip().startswith("server ")]


def test_all_traffic_to_one_colour(tmp_path: Path) -> None:
    conf = render(Route({13002: 100}, "green"), CFG, tmp_path)
    assert _upstream(conf) == ["server 127.0.0.1:13002 weight=100 max_fails=0;"]
    assert "add_header X-Live-Colour green always;" in conf
    assert "mirror" not in conf
    assert f"pid {tmp_path}/nginx.pid;" in conf  # its own pid file, never the system nginx's


def test_a_canary_step_splits_by_weight(tmp_path: Path) -> None:
    conf = render(Route({13001: 95, 13002: 5}, "blue"), CFG, tmp_path)
    assert _upstream(conf) == [
        "server 127.0.0.1:13001 weight=95 max_fails=0;",
        "server 127.0.0.1:13002 weight=5 max_fails=0;",
    ]


def test_a_shadow_mirrors_to_the_idle_colour(tmp_path: Path) -> None:
    conf = render(Route({13001: 100}, "blue", mirror_port=13002), CFG, tmp_path)
    assert "mirror /__shadow;" in conf
    assert "proxy_pass http://127.0.0.1:13002$request_uri;" in conf
    assert _upstream(conf) == ["server 127.0.0.1:13001 weight=100 max_fails=0;"]


def _nginx_test(conf: str, prefix: Path) -> subprocess.CompletedProcess[str]:
    for name in ("logs", *(f"temp/{d}" for d in TEMP_DIRS)):
        (prefix / name).mkdir(parents=True, exist_ok=True)
    path = prefix / "nginx.conf"
    path.write_text(conf, encoding="utf-8")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return subprocess.run(
        [nginx, "-t", "-p", str(prefix), "-e", str(prefix / "logs/error.log"), "-c", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@needs_nginx
@pytest.mark.parametrize(
    "route",
    [
        Route({13001: 100}, "blue"),
        Route({13001: 75, 13002: 25}, "blue"),
        Route({13001: 100}, "blue", 13002),
    ],
    ids=["one", "canary", "shadow"],
)
def test_nginx_accepts_every_rendered_route(route: Route, tmp_path: Path) -> None:
    checked = _nginx_test(render(route, CFG, tmp_path), tmp_path)
    assert checked.returncode == 0, checked.stderr


@needs_nginx
def test_a_config_nginx_refuses_never_replaces_the_live_one(tmp_path: Path) -> None:
    bad = Router(dataclasses.replace(CFG, nginx_directives=["no_such_directive on;"]), tmp_path)
    with pytest.raises(DeployError, match="nginx -t refused"):
        bad.apply(Route({13001: 100}, "blue"))
    assert not bad.conf.exists()  # nothing was put in place, nothing was started
    assert (bad.prefix / "nginx.conf.rejected").read_text().count("no_such_directive") == 1
    assert not bad.running()

"""Beyond one machine: the same blue/green on Kubernetes with Argo Rollouts, from the same config.

``traffic-forecast k8s`` writes an Argo ``Rollout`` (``blueGreen`` with an active and a preview
Service, promotion only after ``prePromotionAnalysis`` ran the smoke and validation gates
against the preview), its two Services and the two ``AnalysisTemplate`` objects, whose Jobs run the
gates this repository's tooling runs on one machine (``traffic-forecast gate-check``) in the
service's own image. Readiness is ``/readyz``, liveness ``/livez``; a ``preStop`` pause lets the
endpoints controller take a pod out of the Service before BentoML starts its graceful stop.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import yaml

from traffic_forecast.core import command
from traffic_forecast.core.config import Config
from traffic_forecast.core.settings import load_config
from traffic_forecast.serving.ingest import TOKEN_ENV
from traffic_forecast.serving.live import STORE_ENV

APP = "traffic-forecast"
PORT = 3000  # bentoml serve's default, inside the container
PRESTOP_DRAIN_S = 10  # endpoints are removed from Services within a few seconds
ACTIVE, PREVIEW = f"{APP}-active", f"{APP}-preview"
SMOKE, VALIDATION = f"{APP}-smoke", f"{APP}-validation"
LIVE_SECRET = f"{APP}-live"  # keys: observations-url, ingest-token


def _secret_env(name: str, key: str) -> dict[str, Any]:
    # Optional: without the Secret a replica serves the packaged model's forecast, as before.
    reference = {"name": LIVE_SECRET, "key": key, "optional": True}
    return {"name": name, "valueFrom": {"secretKeyRef": reference}}


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    }


def _service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": APP}},
        "spec": {
            "selector": {"app": APP},  # Argo Rollouts adds the pod-template hash of its colour
            "ports": [{"name": "http", "port": PORT, "targetPort": PORT}],
        },
    }


def _analysis(name: str, image: str, command: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "args": [{"name": "preview"}, {"name": "active"}],
            "metrics": [
                {
                    "name": name,
                    "provider": {
                        "job": {
                            "spec": {
                                "backoffLimit": 0,
                                "template": {
                                    "spec": {
                                        "restartPolicy": "Never",
                                        "containers": [
                                            {"name": "gate", "image": image, "command": command}
                                        ],
                                    }
                                },
                            }
                        }
                    },
                }
            ],
        },
    }


def manifests(cfg: Config) -> list[dict[str, Any]]:
    """The Rollout, its Services and AnalysisTemplates, as plain data."""
    deploy = cfg.deploy
    preview_url = f"http://{PREVIEW}:{PORT}"
    active_url = f"http://{ACTIVE}:{PORT}"
    gate = ["python", "-m", "traffic_forecast.cli", "gate-check", "--new", "{{args.preview}}"]
    grace = PRESTOP_DRAIN_S + math.ceil(deploy.stop_timeout_s) + 5
    container = {
        "name": APP,
        "image": deploy.image,
        "ports": [{"name": "http", "containerPort": PORT}],
        "env": [
            {"name": "BENTOML_DO_NOT_TRACK", "value": "True"},
            {"name": "TRAFFIC_FORECAST_WORKERS", "value": "1"},  # scale with replicas instead
            # Live actuals: every replica reads one PostgreSQL store; the URL (with its
            # password) and the ingest token come from a Secret, never from the image.
            _secret_env(STORE_ENV, "observations-url"),
            _secret_env(TOKEN_ENV, "ingest-token"),
        ],
        "readinessProbe": _probe("/readyz", 5, 3),
        "livenessProbe": _probe("/livez", 10, 3),
        # The model loads and forecasts its self-check before /readyz: give it the deploy timeout.
        "startupProbe": _probe("/livez", 5, math.ceil(deploy.ready_timeout_s / 5)),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_DRAIN_S)]}}},
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    }
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": APP, "labels": {"app": APP}},
        "spec": {
            "replicas": deploy.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {"terminationGracePeriodSeconds": grace, "containers": [container]},
            },
            "strategy": {
                "blueGreen": {
                    "activeService": ACTIVE,
                    "previewService": PREVIEW,
                    "autoPromotionEnabled": True,  # after the analysis passed, and only then
                    "prePromotionAnalysis": {
                        "templates": [{"templateName": SMOKE}, {"templateName": VALIDATION}],
                        "args": [
                            {"name": "preview", "value": preview_url},
                            {"name": "active", "value": active_url},
                        ],
                    },
                    # The old ReplicaSet keeps running for the rollback window.
                    "scaleDownDelaySeconds": math.ceil(deploy.rollback_window_s),
                    "abortScaleDownDelaySeconds": 30,
                }
            },
        },
    }
    return [
        rollout,
        _service(ACTIVE),
        _service(PREVIEW),
        _analysis(SMOKE, deploy.image, [*gate, "--smoke-only"]),
        _analysis(VALIDATION, deploy.image, [*gate, "--live", "{{args.active}}"]),
    ]


def render(cfg: Config) -> str:
    """All manifests as one multi-document YAML file."""
    header = (
        "# Generated by `traffic-forecast k8s` from conf/deploy: edit the config, not this file.\n"
    )
    return header + yaml.safe_dump_all(manifests(cfg), sort_keys=False)


def _run(args: argparse.Namespace) -> int:
    text = render(load_config(args.overrides))
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast k8s [--out FILE] [overrides…]``."""
    parser = command.parser("k8s", __doc__)
    parser.add_argument("--out", type=Path, default=None, help="write here (default: stdout)")
    return command.run(parser, _run, argv)


if __name__ == "__main__":
    sys.exit(main())

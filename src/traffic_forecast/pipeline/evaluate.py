"""Stage 3, evaluate: rolling-origin backtest of the model and the seasonal-naive baseline.

Both are scored on identical folds. With ``model=auto`` every candidate is, and their stacked
ensemble; the lowest MASE is chosen (`traffic_forecast.forecasting.selection`). Writes
``reports/metrics.json`` (DVC metrics, with every candidate's scores), ``reports/choice.json``
(what the train stage fits), the per-fold table, DVC plot data (forecast vs actual, error by
horizon) and PNG plots beside them.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import dataclass
from typing import Any

import pandas as pd

from traffic_forecast.core import command
from traffic_forecast.core.config import BacktestConfig, Config
from traffic_forecast.core.errors import ConfigError
from traffic_forecast.core.io import write_json_atomic, write_text_atomic
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.schemas import FutureFeatures, TrafficRaw
from traffic_forecast.forecasting import plots
from traffic_forecast.forecasting.backtest import BacktestRun, conformal_run, run_backtest
from traffic_forecast.forecasting.ensemble import stacked_folds, stacking_weights
from traffic_forecast.forecasting.intervals import calibrate, calibration_payload
from traffic_forecast.forecasting.metrics import error_by_step, fold_mase, summarise
from traffic_forecast.forecasting.selection import ENSEMBLE, Choice, candidate_models, choose
from traffic_forecast.pipeline import outputs

log = logging.getLogger(__name__)

# Each candidate's row in metrics.json's selection table (the headline metrics are the chosen's)
CANDIDATE_METRICS = ("mase", "mae", "rmse", "interval_coverage", "interval_width_rel")


def sale_hours(history: pd.DataFrame) -> pd.DatetimeIndex:
    """The hours on which a sale was running."""
    on_sale = history[FutureFeatures.sale_active] == 1
    return pd.DatetimeIndex(history.loc[on_sale, TrafficRaw.timestamp])


def metrics_payload(
    model: BacktestRun, baseline: BacktestRun, sales: pd.DatetimeIndex, cfg: Config
) -> dict[str, Any]:
    """``metrics.json``: model and baseline headline metrics and their ratio."""
    model_metrics = summarise(model.folds, sales)
    baseline_metrics = summarise(baseline.folds, sales)
    return {
        "model": model_metrics,
        "baseline": baseline_metrics,
        "mase_vs_baseline": _ratio(model_metrics["mase"], baseline_metrics["mase"]),
        "backtest": {
            "folds": len(model.folds),
            "horizon_hours": cfg.backtest.horizon,
            "step_hours": cfg.backtest.step_hours,
            "coverage": cfg.backtest.coverage,
        },
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def interval_payload(
    model: BacktestRun, baseline: BacktestRun, backtest: BacktestConfig
) -> dict[str, Any]:
    """How serving makes intervals: the model's own, or conformal bounds per bucket of steps.

    Each bucket's grid (bounds every 0.5 % of tail level) lets serving answer any coverage a
    request asks for, hour by hour; past the backtest's horizon it applies the last bucket.
    The baseline's grids are for the seasonal-naive fallback, which has no intervals of its
    own; its buckets and coverage are the backtest's.
    """
    fallback = calibrate(baseline.folds, backtest.coverage, bucket_hours=backtest.bucket_hours)
    payload: dict[str, Any] = {"method": "native", "baseline": calibration_payload(fallback)}
    if model.calibration is None:
        return payload
    return (
        payload
        | {"method": "split_conformal_log_residuals"}
        | calibration_payload(model.calibration, model.folds)
    )


def fold_table(model: BacktestRun, baseline: BacktestRun) -> pd.DataFrame:
    """One row per fold: cutoff, model and baseline MASE."""
    return pd.DataFrame(
        {
            "fold": range(1, len(model.folds) + 1),
            "cutoff": [str(f.cutoff) for f in model.folds],
            "model_mase": [fold_mase(f) for f in model.folds],
            "baseline_mase": [fold_mase(f) for f in baseline.folds],
        }
    )


def forecast_table(model: BacktestRun, baseline: BacktestRun) -> pd.DataFrame:
    """Every backtest hour: actual, model, baseline and the model's interval."""
    parts = []
    for number, (ours, theirs) in enumerate(zip(model.folds, baseline.folds, strict=True), 1):
        part = pd.DataFrame(
            {
                "fold": number,
                "timestamp": pd.DatetimeIndex(ours.actual.index).strftime("%Y-%m-%d %H:%M"),
                "actual": ours.actual.to_numpy(),
                "model": ours.forecast.to_numpy(),
                "baseline": theirs.forecast.to_numpy(),
            }
        )
        if ours.lower is not None and ours.upper is not None:
            part["lower"], part["upper"] = ours.lower.to_numpy(), ours.upper.to_numpy()
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def horizon_table(model: BacktestRun, baseline: BacktestRun) -> pd.DataFrame:
    """MAE and MASE per hour ahead, model vs baseline."""
    ours, theirs = error_by_step(model.folds), error_by_step(baseline.folds)
    return pd.DataFrame(
        {
            "step": ours["step"],
            "model_mae": ours["mae"],
            "baseline_mae": theirs["mae"],
            "model_mase": ours["mase"],
            "baseline_mase": theirs["mase"],
        }
    )


@dataclass(frozen=True)
class Selection:
    """``model=auto``'s evidence: every candidate's backtest, the excluded, and the choice."""

    runs: dict[str, BacktestRun]  # cost order, the ensemble last
    excluded: dict[str, str]  # candidate -> why it could not be backtested on this data
    weights: dict[str, float]  # the ensemble's, learnt on every fold (empty without one)
    choice: Choice

    @property
    def chosen(self) -> BacktestRun:
        """The chosen candidate's backtest."""
        return self.runs[self.choice.model]


def select(cfg: Config, history: pd.DataFrame) -> Selection:
    """Backtest every candidate of ``model=auto`` (and their ensemble); choose by MASE."""
    runs: dict[str, BacktestRun] = {}
    excluded: dict[str, str] = {}
    for name, candidate in candidate_models(cfg.model).items():
        try:
            runs[name] = run_backtest(
                candidate, history, cfg.backtest, setting=f"model.candidates.{name}"
            )
        except ConfigError as exc:  # e.g. a multiplicative form on data with zero hours
            log.warning("candidate %s left out: %s", name, exc)
            excluded[name] = str(exc)
    if not runs:
        raise ConfigError("model=auto: no candidate could be backtested: " + "; ".join(excluded))
    weights: dict[str, float] = {}
    if cfg.model.ensemble and len(runs) > 1:
        folds = [run.folds for run in runs.values()]
        # rounded as metrics.json rounds: the weights trained are the weights recorded
        learnt = _rounded([float(w) for w in stacking_weights(folds)])
        weights = dict(zip(runs, learnt, strict=True))
        seconds = sum(run.seconds for run in runs.values())
        ensemble = conformal_run(ENSEMBLE, stacked_folds(folds), seconds, cfg.backtest)
        runs[ENSEMBLE] = ensemble
    mase = {name: summarise(run.folds, pd.DatetimeIndex([]))["mase"] for name, run in runs.items()}
    chosen = choose(mase, cfg.model.tie_tolerance)
    log.info("model=auto chose %s: MASE %s", chosen, {k: _rounded(v) for k, v in mase.items()})
    choice = Choice(chosen, weights if chosen == ENSEMBLE else {})
    return Selection(runs, excluded, weights, choice)


def selection_payload(
    selection: Selection, baseline: dict[str, Any], sales: pd.DatetimeIndex, cfg: Config
) -> dict[str, Any]:
    """``metrics.json``'s record of the choice: every candidate's scores, the rule, the winner."""
    candidates: dict[str, Any] = {}
    for name, run in selection.runs.items():
        scores = summarise(run.folds, sales)
        candidates[name] = {key: scores.get(key) for key in CANDIDATE_METRICS} | {
            "mase_vs_baseline": _ratio(scores["mase"], baseline["mase"])
        }
    if ENSEMBLE in candidates:
        candidates[ENSEMBLE]["weights"] = selection.weights
    for name, reason in selection.excluded.items():
        candidates[name] = {"excluded": reason}
    return {
        "chosen": selection.choice.model,
        "rule": (
            f"lowest MASE; candidates within {cfg.model.tie_tolerance:.0%} of the best are tied "
            "and the one listed first (the cheaper) wins; the ensemble is the most expensive"
        ),
        "candidates": candidates,
        "order": list(candidates),  # cost order: metrics.json's keys are written sorted
    }


def run(cfg: Config) -> dict[str, Any]:
    """Backtest model (or every candidate) and baseline; write metrics, choice, tables, plots."""
    paths = cfg.paths
    history, _ = outputs.read_features(paths)
    baseline = run_backtest(
        cfg.baseline, history, cfg.backtest, setting="baseline", intervals=False
    )
    sales = sale_hours(history)
    if cfg.model.candidates:
        selection = select(cfg, history)
        model, choice = selection.chosen, selection.choice
    else:
        selection = None
        model = run_backtest(cfg.model, history, cfg.backtest, setting="model")
        choice = Choice(cfg.model.name)
    metrics = metrics_payload(model, baseline, sales, cfg)
    if selection is not None:
        metrics["selection"] = selection_payload(selection, metrics["baseline"], sales, cfg)
    write_json_atomic(outputs.METRICS.path(paths), _rounded(metrics))
    write_json_atomic(outputs.CHOICE.path(paths), choice.as_dict())
    write_json_atomic(
        outputs.INTERVALS.path(paths), _rounded(interval_payload(model, baseline, cfg.backtest))
    )
    write_text_atomic(
        outputs.FOLDS.path(paths), fold_table(model, baseline).round(4).to_csv(index=False)
    )
    forecasts = forecast_table(model, baseline)
    horizon = horizon_table(model, baseline)
    write_text_atomic(
        outputs.FORECAST_PLOT_DATA.path(paths), forecasts.round(1).to_csv(index=False)
    )
    write_text_atomic(outputs.HORIZON_PLOT_DATA.path(paths), horizon.round(4).to_csv(index=False))
    plots.forecast_vs_actual(forecasts, outputs.FORECAST_PNG.path(paths))
    plots.error_by_horizon(horizon, outputs.HORIZON_PNG.path(paths))
    return metrics


def _rounded(value: Any) -> Any:
    # Metrics are compared across machines and commits: 6 significant digits are plenty and
    # keep last-bit float noise out of diffs.
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None  # JSON has no NaN
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.overrides)
    metrics = run(cfg)
    log.info(
        "backtest %s vs %s over %d folds: MASE %.3f vs %.3f (ratio %.2f); reports in %s/",
        cfg.model.name,
        cfg.baseline.name,
        metrics["backtest"]["folds"],
        metrics["model"]["mase"],
        metrics["baseline"]["mase"],
        metrics["mase_vs_baseline"],
        cfg.paths.reports_dir,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast evaluate [overrides…]`` (DVC: ``python -m …pipeline.evaluate``)."""
    return command.run(command.parser("evaluate", __doc__), _run, argv)


if __name__ == "__main__":
    sys.exit(main())

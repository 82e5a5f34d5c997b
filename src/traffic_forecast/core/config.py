"""Typed configuration: the schema of ``conf/``, so a misspelt or unknown key fails at once.

Every setting a command reads is merged into the dataclasses below (`to_typed`) before any data
is read; `traffic_forecast.core.settings` is the one loader that gathers them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from traffic_forecast.core.errors import ConfigError

FILL_GAPS = ("none", "zero", "interpolate", "seasonal")
DATA_SOURCES = ("simulator", "external")
HOLIDAY_CALENDARS = ("us_federal", "none")
WEEK_HOURS = 168
FLEET_MODELS = ("local", "global")
SHORT_SERIES = ("exclude", "error")
# Batch forecasts summing to their totals: sktime's Reconciler methods ("bu" would change nothing)
RECONCILE = ("none", "ols", "wls_str", "td_fcst")
# sktime's "no-update_params" is left out: the default model's AR step cannot predict from a
# cutoff it was not fitted at (statsmodels refuses), so it would fail mid-backtest.
BACKTEST_STRATEGIES = ("refit", "update")
INTERVAL_METHODS = ("native", "conformal")
# An A/B experiment: the challenger answers no client (shadow) or a sticky share of them (split)
EXPERIMENT_MODES = ("shadow", "split")


@dataclass
class PathsConfig:
    """Where stages read and write, relative to the repository root."""

    raw_dir: str = "data/raw"
    validated_dir: str = "data/validated"
    features_dir: str = "data/features"
    model_dir: str = "models"
    reports_dir: str = "reports"


@dataclass
class SimulatorConfig:
    """The knobs of the example-data simulator that a user is expected to turn."""

    seed: int = 20240101
    start: str = "2024-01-01"
    end: str = "2025-06-30 23:00"
    drift_start: str = "2025-07-01"
    drift_end: str = "2025-09-30 23:00"


def _default_regions() -> dict[str, int]:
    # Hours each region's local day runs ahead of the site's clock (whole hours, as time zones)
    return {"us-east": 0, "us-west": -3, "eu-west": 5, "ap-southeast": 13}


def _default_services() -> list[str]:
    return ["search", "catalog", "cart", "checkout", "accounts"]


@dataclass
class FleetGlobalModelConfig:
    """``fleet.model=global``: Spark ML's GBTRegressor over every series' scaled target."""

    max_iter: int = 60  # boosting rounds
    max_depth: int = 5
    step_size: float = 0.1  # learning rate
    max_bins: int = 64  # at least the number of regions and of services (categorical splits)
    # Hours a leaf must hold: one hour's noise alone must not make a leaf (Spark's default is 1)
    min_instances_per_node: int = 20
    seed: int = 0
    # Hours of each series' history up to the cutoff the model learns from (None: all of it)
    train_hours: int | None = 8 * WEEK_HOURS

    def __post_init__(self) -> None:
        counts = [self.max_iter, self.max_depth, self.max_bins, self.min_instances_per_node]
        if self.train_hours is not None:
            counts.append(self.train_hours)
        if min(counts) < 1 or not 0 < self.step_size <= 1:
            raise ConfigError(
                "data.fleet.global_model: max_iter, max_depth, max_bins, "
                "min_instances_per_node and train_hours must be >= 1, step_size in (0, 1]"
            )


@dataclass
class FleetConfig:
    """Fleet mode (``data=fleet``): one series per region and service, splitting the site total.

    The site's hourly total comes from the simulator (``data.simulator``), so the fleet shares
    its sale calendar; ``seed`` draws only how the total is split.
    """

    regions: dict[str, int] = field(default_factory=_default_regions)  # name -> hours ahead
    services: list[str] = field(default_factory=_default_services)
    seed: int = 17
    noise: float = 0.05  # typical relative hour-to-hour noise of a series' share
    raw_dir: str = "data/raw/fleet/series"  # Parquet, partitioned by series_id and month
    validated_dir: str = "data/fleet/validated"  # written only when every series passes
    # The site's sale calendar, which every series shares (written beside the fleet)
    sale_events_file: str = "data/raw/fleet/sale_events.parquet"
    predictions_dir: str = "data/fleet/predictions"  # batch forecasts: a folder per run id
    # local: one forecaster per series (conf/model/); global: one GBTRegressor for all series
    model: str = "local"
    # Hours a series needs beyond what the backtest needs (the larger of the two applies)
    min_history_hours: int = 2 * WEEK_HOURS
    short_series: str = "exclude"  # exclude: listed with the reason; error: stop, naming it
    # Batch forecasts made to sum to each region's and the site's forecast (none: as forecast)
    reconcile: str = "none"
    global_model: FleetGlobalModelConfig = field(default_factory=FleetGlobalModelConfig)

    def __post_init__(self) -> None:
        if self.model not in FLEET_MODELS:
            raise ConfigError(f"data.fleet.model={self.model!r}: choose one of {FLEET_MODELS}")
        if self.reconcile not in RECONCILE:
            raise ConfigError(f"data.fleet.reconcile={self.reconcile!r}: choose one of {RECONCILE}")
        if self.short_series not in SHORT_SERIES:
            raise ConfigError(
                f"data.fleet.short_series={self.short_series!r}: choose one of {SHORT_SERIES}"
            )
        if self.min_history_hours < 0:
            raise ConfigError(f"data.fleet.min_history_hours={self.min_history_hours}: >= 0")
        if Path(self.sale_events_file).resolve().is_relative_to(Path(self.raw_dir).resolve()):
            raise ConfigError(
                f"data.fleet.sale_events_file={self.sale_events_file} is inside "
                f"data.fleet.raw_dir={self.raw_dir}: every Parquet file there is read as a "
                "partition of the fleet; keep the calendar beside it"
            )
        if not self.regions or not self.services:
            raise ConfigError("data.fleet.regions and data.fleet.services must not be empty")
        if any(not -23 <= hours <= 23 for hours in self.regions.values()):
            raise ConfigError(f"data.fleet.regions={self.regions}: offsets in -23..23 hours")
        if len(set(self.services)) != len(self.services):
            raise ConfigError(f"data.fleet.services={self.services}: names must be unique")
        if self.seed < 0 or not 0.0 <= self.noise < 1.0:
            raise ConfigError("data.fleet.seed must be >= 0 and data.fleet.noise in [0, 1)")


@dataclass
class DataConfig:
    """Which raw files to read and how their columns map onto the pipeline's names."""

    name: str = "example"
    source: str = "simulator"  # simulator: data.dvc can be regenerated; external: it cannot
    traffic_file: str = "data/raw/traffic.csv"
    timestamp_column: str = "timestamp"
    hour_column: str | None = None  # set when the hour sits in its own column (date + hour)
    target_column: str = "sessions"
    event_columns: list[str] = field(default_factory=list)  # 0/1 flags in the traffic file
    sale_events_file: str | None = "data/raw/sale_events.csv"
    infrastructure_file: str | None = "data/raw/infrastructure.csv"
    sale_kinds: list[str] = field(default_factory=list)
    strict_columns: bool = True  # False: ignore columns the config does not name
    # none: report gaps as errors; zero, interpolate, seasonal: fill them, and the report says so
    fill_gaps: str = "none"
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)  # read in fleet mode only

    def __post_init__(self) -> None:
        if self.fill_gaps not in FILL_GAPS:
            raise ConfigError(f"data.fill_gaps={self.fill_gaps!r}: choose one of {FILL_GAPS}")
        if self.source not in DATA_SOURCES:
            raise ConfigError(f"data.source={self.source!r}: choose one of {DATA_SOURCES}")


@dataclass
class FeaturesConfig:
    """The exogenous features of the model-ready frame (history and horizon alike)."""

    horizon: int = 168  # hours of future features built past the last observed hour
    holidays: str = "us_federal"  # public-holiday calendar: us_federal or none

    def __post_init__(self) -> None:
        if not 1 <= self.horizon <= WEEK_HOURS:
            raise ConfigError(
                f"features.horizon={self.horizon}: must be 1 to {WEEK_HOURS} hours (the "
                "same-hour-last-week feature is only known that far ahead)"
            )
        if self.holidays not in HOLIDAY_CALENDARS:
            raise ConfigError(
                f"features.holidays={self.holidays!r}: choose one of {HOLIDAY_CALENDARS}"
            )


@dataclass
class ModelConfig:
    """A forecaster: a ``_target_`` block that Hydra instantiates, and what it needs.

    ``model=auto`` has ``candidates`` instead of a forecaster: the evaluate stage backtests
    each (and, with ``ensemble``, their stacked ensemble) and the train stage fits the winner.
    """

    name: str = MISSING
    forecaster: dict[str, Any] = field(default_factory=dict)
    uses_exog: bool = False  # fit/predict with the calendar and sale features as X
    # native: the forecaster's own predict_interval; conformal: calibrated on backtest residuals
    intervals: str = "conformal"
    # model=auto: name -> a model block like this one, listed cheapest first (ties go to it)
    candidates: dict[str, Any] = field(default_factory=dict)
    ensemble: bool = False  # model=auto: a stacked ensemble of the candidates competes too
    # model=auto: MASEs within this relative distance of the best tie; the cheaper one wins
    tie_tolerance: float = 0.01

    def __post_init__(self) -> None:
        if self.intervals not in INTERVAL_METHODS:
            raise ConfigError(
                f"{self.name}: intervals={self.intervals!r}: choose one of {INTERVAL_METHODS}"
            )
        schema_only = self.name == MISSING  # the empty schema, before a config is merged in
        if not (self.forecaster or self.candidates or schema_only):
            raise ConfigError(f"{self.name}: set a forecaster (or, for model=auto, candidates)")
        if self.forecaster and self.candidates:
            raise ConfigError(f"{self.name}: set a forecaster or candidates, not both")
        if not 0.0 <= self.tie_tolerance < 1.0:
            raise ConfigError(f"{self.name}: tie_tolerance={self.tie_tolerance} must be in [0, 1)")


@dataclass
class BacktestConfig:
    """The rolling-origin backtest: the same folds for the model and the baseline."""

    horizon: int = 24
    n_folds: int = 26
    step_hours: int = 168
    coverage: float = 0.9  # prediction-interval coverage scored in the backtest
    # Conformal intervals are calibrated per bucket of this many horizon steps (see weekly.yaml)
    bucket_hours: int = 6
    strategy: str = "refit"  # sktime evaluate: refit, update or no-update_params
    backend: str | None = None  # sktime evaluate backend: null, loky, multiprocessing, dask
    n_jobs: int = 1

    def __post_init__(self) -> None:
        if min(self.horizon, self.n_folds, self.step_hours) < 1:
            raise ConfigError("backtest.horizon, n_folds and step_hours must all be at least 1")
        if self.bucket_hours < 1:
            raise ConfigError(
                f"backtest.bucket_hours={self.bucket_hours}: conformal intervals need at least "
                "one horizon step per bucket"
            )
        if not 0.0 < self.coverage < 1.0:
            raise ConfigError(f"backtest.coverage={self.coverage}: must lie in (0, 1)")
        if self.strategy not in BACKTEST_STRATEGIES:
            raise ConfigError(
                f"backtest.strategy={self.strategy!r}: choose one of {BACKTEST_STRATEGIES}"
            )


@dataclass
class ExplainConfig:
    """Permutation importance of feature groups on the last ``holdout_hours`` of history."""

    holdout_hours: int = 168
    repeats: int = 5

    def __post_init__(self) -> None:
        if self.holdout_hours < 1 or self.repeats < 1:
            raise ConfigError("explain.holdout_hours and explain.repeats must be at least 1")


@dataclass
class GateConfig:
    """Pass/fail thresholds for a pull request's metrics."""

    max_mase_regression_pct: float = 2.0
    max_sale_error_regression_pct: float = 5.0
    must_beat_baseline: bool = True
    override_label: str = "gate-override"
    require_current_lock: bool = True  # dvc.lock must record the PR's code, params and data
    # Fleet mode only (`reports/fleet_metrics.csv` exists): a single series never reads these.
    fleet_max_mase_ratio: float = 1.0  # fleet MASE / seasonal naive's must stay below this
    fleet_series_tolerance_pct: float = 5.0  # a series whose MASE rose more than this got worse
    fleet_max_share_worse: float = 0.10  # at most this share of the series may get worse

    def __post_init__(self) -> None:
        if self.fleet_max_mase_ratio <= 0:
            raise ConfigError(f"gate.fleet_max_mase_ratio={self.fleet_max_mase_ratio}: must be > 0")
        if self.fleet_series_tolerance_pct < 0:
            raise ConfigError(
                f"gate.fleet_series_tolerance_pct={self.fleet_series_tolerance_pct}: must be >= 0"
            )
        if not 0.0 <= self.fleet_max_share_worse <= 1.0:
            raise ConfigError(
                f"gate.fleet_max_share_worse={self.fleet_max_share_worse}: must lie in [0, 1]"
            )


@dataclass
class CapacityConfig:
    """How forecasts become instances: capacity learnt from the infrastructure table."""

    window_hours: int = 672  # learn per-instance capacity from the last four weeks
    min_cpu: float = 0.2  # hours with less CPU measure noise, not load
    target_utilisation: float = 0.6  # size the fleet to keep CPU at this level

    def __post_init__(self) -> None:
        if self.window_hours < 1:
            raise ConfigError(f"capacity.window_hours={self.window_hours}: must be at least 1")
        if not 0.0 <= self.min_cpu < 1.0:
            raise ConfigError(f"capacity.min_cpu={self.min_cpu}: must lie in [0, 1)")
        if not 0.0 < self.target_utilisation <= 1.0:
            raise ConfigError(
                f"capacity.target_utilisation={self.target_utilisation}: must lie in (0, 1]"
            )


@dataclass
class ServingConfig:
    """The HTTP service: model name in the BentoML store, request limits, the what-if budget."""

    model_name: str = "traffic-forecast"  # the BentoML model (and Bento) name
    default_horizon: int = 24
    default_coverage: float = 0.9  # prediction-interval coverage when a request names none
    what_if_budget_ms: int = 1000  # a what-if running longer (from its start) gets the fallback
    what_if_threads: int = 2  # what-ifs computed at once per worker, beside the event loop
    what_if_queue: int = 64  # what-ifs waiting for a thread; beyond, 503 with Retry-After
    max_events: int = 20  # planned sale events in one what-if request
    max_body_bytes: int = 65536  # larger request bodies get 413
    prediction_log_max_bytes: int = 100 * 2**20  # rotate the prediction log at this size
    prediction_log_backups: int = 5
    fast_path: bool = True  # the HTTP guard answers /forecast and /capacity, past BentoML's API
    # Live actuals (`POST /observations`, `traffic-forecast observe`)
    max_data_age_hours: float = 3.0  # older newest actual: answers say stale
    max_future_hours: float = 1.0  # observed hours later than now + this are refused
    observations_poll_s: float = 1.0  # how often each worker looks for new actuals in the store
    max_ingest_bytes: int = 8 * 2**20  # larger `POST /observations` bodies get 413

    def __post_init__(self) -> None:
        if min(self.max_data_age_hours, self.max_future_hours, self.observations_poll_s) <= 0:
            raise ConfigError(
                "serving.max_data_age_hours, max_future_hours, observations_poll_s must be > 0"
            )
        if not 1 <= self.default_horizon <= WEEK_HOURS:
            raise ConfigError(f"serving.default_horizon={self.default_horizon}: 1 to {WEEK_HOURS}")
        if not 0.0 < self.default_coverage < 1.0:
            raise ConfigError(f"serving.default_coverage={self.default_coverage}: in (0, 1)")
        if min(self.what_if_budget_ms, self.max_events, self.max_body_bytes) < 1:
            raise ConfigError(
                "serving.what_if_budget_ms, max_events and max_body_bytes must be at least 1"
            )
        if self.what_if_threads < 1 or self.what_if_queue < 0:
            raise ConfigError("serving.what_if_threads must be at least 1, what_if_queue ≥ 0")


@dataclass
class ValidationGateConfig:
    """Deploy gate: the new model's error on fresh actuals against the live model's."""

    actuals_file: str = "data/fresh/traffic.csv"  # hourly actuals newer than the training data
    hours: int = 168  # score at most the most recent this many hours
    tolerance_pct: float = 5.0  # the new model's MAE may exceed the live one's by this much
    required: bool = False  # True: no fresh actuals (or none after both origins) fails the gate

    def __post_init__(self) -> None:
        if self.hours < 1 or self.tolerance_pct < 0:
            raise ConfigError("deploy.validation.hours >= 1 and tolerance_pct >= 0 required")


@dataclass
class ShadowConfig:
    """Mirror live traffic to the new colour, then compare the two colours' answers."""

    enabled: bool = False
    seconds: float = 10.0
    max_diff_pct: float = 50.0  # mean |new - live| / live of the compared forecasts


@dataclass
class CanaryConfig:
    """Shift traffic in weighted steps, aborting when the new colour errs or slows down."""

    enabled: bool = False
    steps: list[int] = field(default_factory=lambda: [5, 25, 100])  # percent to the new colour
    step_seconds: float = 10.0
    max_error_rate: float = 0.01  # 5xx share of the new colour's answers during a step
    max_p99_ms: float = 500.0  # the new colour's p99 through the router during a step
    min_requests: int = 0  # fewer answers in a step: not enough to judge, which fails it

    def __post_init__(self) -> None:
        if not self.steps or self.steps[-1] != 100 or sorted(self.steps) != self.steps:
            raise ConfigError(f"deploy.canary.steps={self.steps}: increasing, ending at 100")
        if any(not 0 < step <= 100 for step in self.steps):
            raise ConfigError(f"deploy.canary.steps={self.steps}: each in (0, 100]")


@dataclass
class DeployConfig:
    """Blue/green on one machine: HAProxy in front of two `bentoml serve` slots."""

    state_dir: str = ".deploy"  # the router's config, socket and logs; the state file
    host: str = "127.0.0.1"
    router_port: int = 8080
    blue_port: int = 3001
    green_port: int = 3002
    ready_timeout_s: float = 180.0
    confirm_timeout_s: float = 30.0
    rollback_window_s: float = 600.0  # the old colour keeps running this long after a switch
    stop_timeout_s: float = 30.0  # graceful stop of a colour, then SIGKILL
    smoke_horizon: int = 24
    haproxy: str = "haproxy"
    router_directives: list[str] = field(default_factory=list)  # extra `frontend` directives
    validation: ValidationGateConfig = field(default_factory=ValidationGateConfig)
    shadow: ShadowConfig = field(default_factory=ShadowConfig)
    canary: CanaryConfig = field(default_factory=CanaryConfig)
    # Kubernetes (Argo Rollouts) manifests, generated from this same config
    image: str = "traffic-forecast:latest"
    replicas: int = 2


@dataclass
class MonitorConfig:
    """Drift and decay thresholds, and where new actuals and the prediction logs are."""

    actuals_dir: str = "data/incoming"  # new raw tables (the files of data/raw), as they arrive
    prediction_logs: str = ""  # glob of the served forecasts; empty: the deployed colours' logs
    reference_weeks: int = 4  # the end of the training data compared with the recent actuals
    recent_weeks: int = 4  # the newest actuals compared (at most)
    level_shift_pct: float = 15.0
    profile_shift: float = 0.10  # mean |difference| of the normalised hour-of-week profiles
    capacity_shift_pct: float = 5.0
    error_increase_pct: float = 50.0  # realised MAE vs the backtest's
    coverage_drop_pp: float = 15.0  # interval coverage below nominal by more than this
    min_hours: int = 24  # fewer forecast hours with actuals: the quality checks wait
    retrain_every_days: int = 28  # propose a retrain once actuals reach this far past training

    def __post_init__(self) -> None:
        if min(self.reference_weeks, self.recent_weeks, self.min_hours) < 1:
            raise ConfigError("monitor.reference_weeks, recent_weeks, min_hours must be >= 1")


@dataclass
class ObservationsConfig:
    """The store of observed hours that every colour reads (`traffic_forecast.data.store`)."""

    # A SQLAlchemy URL; empty: SQLite beside the deploy state. PostgreSQL in production:
    # postgresql+psycopg://user@host/db, its password from the environment, never from conf/.
    url: str = ""


@dataclass
class SparkConfig:
    """The Spark session of fleet mode: embedded ``local[*]`` by default, a cluster by ``master``.

    Only where and how fast the work runs: no setting here changes a result, which is why it
    sits with the run-time settings (``conf/ops.yaml``) and never makes DVC rerun a stage.
    """

    master: str = "local[*]"  # local[N], spark://host:7077, k8s://https://host:443, yarn
    app_name: str = "traffic-forecast-fleet"
    driver_memory: str = "2g"  # takes effect when the session starts the driver JVM
    executor_memory: str | None = None  # a cluster's executors; null: Spark's default
    executor_cores: int | None = None
    shuffle_partitions: int = 8  # Spark's 200 is for clusters; small data wants few
    local_dir: str = ".spark"  # Spark's scratch space (shuffle and spill files)
    log_level: str = "ERROR"
    ui: bool = False  # the web UI on port 4040
    settings: dict[str, str] = field(default_factory=dict)  # any other spark.* setting

    def __post_init__(self) -> None:
        if self.shuffle_partitions < 1:
            raise ConfigError(f"spark.shuffle_partitions={self.shuffle_partitions}: at least 1")
        if self.executor_cores is not None and self.executor_cores < 1:
            raise ConfigError(f"spark.executor_cores={self.executor_cores}: at least 1")
        stray = sorted(key for key in self.settings if not key.startswith("spark."))
        if stray:
            raise ConfigError(f"spark.settings: {stray} are not Spark settings (spark.*)")


@dataclass
class GuardrailConfig:
    """The challenger's service levels during an experiment: a breach ends it at once."""

    check_interval_s: float = 10.0  # how often the guard reads the challenger's counters
    max_error_rate: float = 0.01  # 5xx share of the challenger's answers since the last check
    max_p99_ms: float = 500.0  # the challenger's p99 latency since the last check
    max_fallback_share: float = 0.05  # answers from the seasonal-naive fallback
    min_requests: int = 20  # fewer answers since the last check: judged with the next ones

    def __post_init__(self) -> None:
        if self.check_interval_s <= 0 or self.min_requests < 1:
            raise ConfigError("experiment.guardrails: check_interval_s > 0, min_requests >= 1")
        if not (0 <= self.max_error_rate <= 1 and 0 <= self.max_fallback_share <= 1):
            raise ConfigError("experiment.guardrails: rates are shares in [0, 1]")


@dataclass
class ExperimentConfig:
    """Champion vs challenger on live traffic, decided by realised error (README, Experiments)."""

    mode: str = "shadow"  # shadow: the champion answers all; split: a sticky share of clients
    share: float = 0.5  # split: the share of clients the challenger answers
    client_header: str = "X-Client-Id"  # split: the key hashed into an arm
    alpha: float = 0.05  # false-promotion rate over every look, the sequential rule included
    min_days: int = 7  # no decision before this many days of scored forecasts (a weekly cycle)
    max_days: int = 98  # no promotion by then: keep the champion (80 % power at 10 %: README)
    horizon: int = 24  # hours ahead scored per forecast origin (steps 1..horizon)
    scale_weeks: int = 4  # MASE scale: seasonal-naive error over these weeks before the start
    season: int = 168  # the seasonal naive of the MASE scale (hours)
    guardrails: GuardrailConfig = field(default_factory=GuardrailConfig)

    def __post_init__(self) -> None:
        if self.mode not in EXPERIMENT_MODES:
            raise ConfigError(f"experiment.mode={self.mode!r}: one of {EXPERIMENT_MODES}")
        if not 0 < self.share < 1:
            raise ConfigError(f"experiment.share={self.share}: a share in (0, 1)")
        if not 0 < self.alpha < 0.5:
            raise ConfigError(f"experiment.alpha={self.alpha}: in (0, 0.5)")
        if not 1 <= self.min_days <= self.max_days:
            raise ConfigError("experiment: 1 <= min_days <= max_days")
        if self.horizon < 1 or self.scale_weeks < 1 or self.season < 1:
            raise ConfigError("experiment.horizon, scale_weeks and season must be >= 1")
        if not re.fullmatch(r"[A-Za-z0-9-]+", self.client_header):
            raise ConfigError(f"experiment.client_header={self.client_header!r}: a header name")


@dataclass
class PrometheusConfig:
    """The local Prometheus of `make observe`: the deployment's slots and router, the rules."""

    binary: str = "prometheus"  # Debian's package `prometheus` (`make system-deps`)
    host: str = "127.0.0.1"  # loopback only
    port: int = 9091  # not 9090: Debian's own prometheus service takes that one
    rules: str = "deploy/prometheus/rules.yml"
    scrape_interval_s: float = 15.0
    evaluation_interval_s: float = 15.0
    retention: str = "15d"
    ready_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.scrape_interval_s <= 0 or self.evaluation_interval_s <= 0:
            raise ConfigError("prometheus: scrape_interval_s and evaluation_interval_s > 0")
        if not 0 < self.port < 65536:
            raise ConfigError(f"prometheus.port={self.port}: a TCP port")


@dataclass
class Config:
    """Every setting: the pipeline's (``params.yaml``) and what follows it (``conf/ops.yaml``)."""

    # the pipeline (conf/config.yaml, composed into params.yaml): the stages' DVC params
    seed: int = 42
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    baseline: ModelConfig = field(default_factory=ModelConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    # after the pipeline (conf/ops.yaml): no stage reads these, DVC does not track them
    gate: GateConfig = field(default_factory=GateConfig)
    capacity: CapacityConfig = field(default_factory=CapacityConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    observations: ObservationsConfig = field(default_factory=ObservationsConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)

    def __post_init__(self) -> None:
        if self.baseline.candidates:
            raise ConfigError(
                f"model@baseline={self.baseline.name}: the baseline is one fixed forecaster, "
                "the yardstick every candidate is scored against; it cannot be chosen"
            )


PIPELINE_SECTIONS = (
    "seed",
    "paths",
    "data",
    "features",
    "model",
    "baseline",
    "backtest",
    "explain",
)
OPS_SECTIONS = (
    "gate",
    "capacity",
    "serving",
    "deploy",
    "monitor",
    "observations",
    "spark",
    "experiment",
    "prometheus",
)


def to_typed(raw: DictConfig | dict[str, Any], *, origin: str) -> Config:
    """Merge a raw config into the schema; unknown keys and wrong types raise `ConfigError`."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), raw)
        typed = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        reason = str(exc.msg).splitlines()[0]  # OmegaConf appends full_key/type lines
        key = getattr(exc, "full_key", None)
        section = None if key else _misplaced_section(raw)
        if section:
            key, reason = (
                section,
                (
                    f"it is a section, not a value: choose an option with {section}=<option> "
                    f"(for the baseline: model@baseline=<model>); {reason}"
                ),
            )
        raise ConfigError(f"{origin}: setting '{key or '?'}' is invalid: {reason}") from None
    assert isinstance(typed, Config)
    return typed


def _misplaced_section(raw: DictConfig | dict[str, Any]) -> str | None:
    # `baseline=theta` sets a whole section to a string; OmegaConf then reports no key.
    for name, spec in Config.__dataclass_fields__.items():
        if dataclasses.is_dataclass(spec.default_factory) and not isinstance(
            raw.get(name, {}), dict | DictConfig
        ):
            return name
    return None

"""Tunable parameters of the hourly traffic simulator."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SaleKindConfig:
    """Traffic response and discount range of one kind of sale event.

    Attributes
    ----------
    lift : float
        Relative traffic lift at full ramp when the discount equals
        ``reference_discount``; the lift scales linearly with the discount.
    ramp_hours : float
        Time constant of the exponential build-up after the sale starts.
    decay_hours : float
        Time constant of the after-sale tail (shoppers trickling in late).
    min_discount, max_discount : int
        Inclusive range of the advertised discount, in percent.
    reference_discount : int
        Discount at which the lift equals ``lift``.
    """

    lift: float
    ramp_hours: float
    decay_hours: float
    min_discount: int
    max_discount: int
    reference_discount: int = 30


@dataclass(frozen=True)
class SeasonalSaleWindow:
    """A yearly multi-day sale whose start day is drawn inside a window.

    Attributes
    ----------
    name : str
        Human name; the year is appended (``"Summer sale 2024"``).
    month : int
        Month of the start day.
    first_day, last_day : int
        Inclusive range of the start day of month.
    """

    name: str
    month: int
    first_day: int
    last_day: int


def _default_seasonal_windows() -> tuple[SeasonalSaleWindow, ...]:
    return (
        SeasonalSaleWindow("January clearance", 1, 2, 8),
        SeasonalSaleWindow("Spring sale", 4, 5, 20),
        # Mid-July, like the big marketplace summer events.
        SeasonalSaleWindow("Summer sale", 7, 11, 14),
    )


@dataclass(frozen=True)
class SimulationConfig:
    """Every tunable of the simulator; defaults describe the reference site.

    Timestamps are naive, site-local hours; ``end`` and ``drift_end`` are
    inclusive last hours. Levels are sessions per hour, durations hours unless
    the name says days, day-of-year positions are 1-based.
    """

    seed: int = 20240101
    start: str = "2024-01-01"
    end: str = "2025-06-30 23:00"
    drift_start: str = "2025-07-01"
    drift_end: str = "2025-09-30 23:00"
    sale_horizon_days: int = 14

    # Level and trend: the peak weekday hour at ``start``.
    base_peak_sessions: float = 2.0e6
    trend_growth_per_year: float = 0.15

    # Daily profile: von Mises bumps on the 24-hour circle.
    night_trough_ratio: float = 0.25
    day_center_hour: float = 15.0
    day_kappa: float = 1.2
    evening_peak_hour: float = 20.5
    evening_weight: float = 0.8
    evening_kappa: float = 6.0
    lunch_hour: float = 12.5
    lunch_weight: float = 0.08
    lunch_kappa: float = 12.0

    # Weekly profile, Monday first.
    day_levels: tuple[float, ...] = (1.0, 1.02, 1.01, 0.99, 0.95, 0.84, 0.93)
    weekend_morning_delay_hours: float = 2.0
    sunday_evening_boost: float = 0.4

    # Yearly seasonality: Gaussian bumps in day-of-year.
    holiday_season_lift: float = 0.12
    holiday_season_peak_doy: float = 340.0
    holiday_season_width_days: float = 18.0
    summer_dip: float = 0.04
    summer_dip_peak_doy: float = 205.0
    summer_dip_width_days: float = 35.0

    # Public holidays.
    federal_holiday_level: float = 0.92
    thanksgiving_daytime_level: float = 0.55
    thanksgiving_daytime_hours: tuple[int, int] = (7, 18)
    christmas_level: float = 0.5

    # Noise on the log scale: white plus AR(1).
    noise_sigma: float = 0.03
    ar_phi: float = 0.9
    ar_sigma: float = 0.01

    # Sale scheduling.
    min_gap_hours: int = 2
    flash_sales_per_month: float = 2.5
    flash_hours: tuple[int, int] = (2, 6)
    flash_evening_share: float = 0.75
    flash_evening_start_hours: tuple[int, int] = (17, 21)
    flash_daytime_start_hours: tuple[int, int] = (9, 16)
    weekend_sale_probability: float = 0.9
    weekend_sale_start_hour: int = 18
    seasonal_sales: tuple[SeasonalSaleWindow, ...] = field(
        default_factory=_default_seasonal_windows
    )
    seasonal_days: tuple[int, int] = (3, 7)
    black_friday_days: int = 4
    live_streams_per_month: float = 6.0
    live_stream_hours: tuple[int, int] = (1, 3)
    live_stream_start_hours: tuple[int, int] = (18, 22)

    # Traffic response per sale kind.
    flash_sale: SaleKindConfig = field(
        default_factory=lambda: SaleKindConfig(0.6, 0.5, 2.0, 20, 60)
    )
    weekend_sale: SaleKindConfig = field(
        default_factory=lambda: SaleKindConfig(0.3, 3.0, 6.0, 10, 30, 20)
    )
    seasonal_sale: SaleKindConfig = field(
        default_factory=lambda: SaleKindConfig(0.25, 6.0, 12.0, 15, 50)
    )
    black_friday: SaleKindConfig = field(
        default_factory=lambda: SaleKindConfig(0.8, 2.0, 12.0, 30, 70, 50)
    )
    live_stream: SaleKindConfig = field(
        default_factory=lambda: SaleKindConfig(1.2, 0.3, 1.0, 10, 40, 25)
    )

    # Drift period (a new marketing channel, a heavier release).
    drift_level_shift: float = 0.35
    drift_capacity_drop: float = 0.10

    # Infrastructure.
    instance_capacity: float = 20_000.0
    autoscaler_target_cpu: float = 0.6
    min_instances: int = 20
    max_scale_down_fraction: float = 0.35
    cpu_noise_sigma: float = 0.01
    latency_base_ms: float = 60.0
    latency_max_util: float = 0.97
    latency_noise_sigma: float = 0.05
    error_rate_baseline: float = 0.0005
    error_rate_knee_cpu: float = 0.85
    error_rate_slope: float = 5.0
    error_rate_noise_sigma: float = 0.2
    release_interval_days: tuple[int, int] = (7, 21)
    release_hours: tuple[int, int] = (10, 16)
    release_blip_probability: float = 0.2
    release_blip_hours: tuple[int, int] = (1, 3)
    release_blip_latency_factor: float = 1.6
    release_blip_error_rate: float = 0.01

    def sale_kind(self, kind: str) -> SaleKindConfig:
        """Return the traffic response of a sale ``kind``.

        Parameters
        ----------
        kind : str
            One of the sale kinds of the data contract.

        Returns
        -------
        SaleKindConfig
            The configured response.
        """
        response = getattr(self, kind)
        if not isinstance(response, SaleKindConfig):
            raise ValueError(f"unknown sale kind {kind!r}")
        return response

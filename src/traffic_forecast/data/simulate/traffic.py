"""Hourly sessions: trend x daily/weekly/yearly profile x holidays x sales x noise."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.tseries.holiday import USFederalHolidayCalendar, USThanksgivingDay

from traffic_forecast.data.simulate._random import component_rng
from traffic_forecast.data.simulate.config import SimulationConfig
from traffic_forecast.data.simulate.sales import SaleEvent

FloatArray = npt.NDArray[np.float64]

_HOURS_PER_DAY = 24
_DAYS_PER_YEAR = 365.25
_SATURDAY, _SUNDAY = 5, 6
_CHRISTMAS = (12, 25)
# Tails shorter than this many time constants are negligible (<1 %).
_TAIL_CONSTANTS = 5


def _von_mises(hours: FloatArray, center: float, kappa: float) -> FloatArray:
    angle = 2.0 * np.pi * (hours - center) / _HOURS_PER_DAY
    bump: FloatArray = np.exp(kappa * (np.cos(angle) - 1.0))
    return bump


def _day_shape(config: SimulationConfig, delay: float, evening_boost: float) -> FloatArray:
    """One day's profile scaled to [night trough, 1]."""
    hours = np.arange(_HOURS_PER_DAY, dtype=np.float64)
    raw = (
        _von_mises(hours, config.day_center_hour + delay, config.day_kappa)
        + config.evening_weight
        * (1.0 + evening_boost)
        * _von_mises(hours, config.evening_peak_hour, config.evening_kappa)
        + config.lunch_weight * _von_mises(hours, config.lunch_hour + delay, config.lunch_kappa)
    )
    unit = (raw - raw.min()) / (raw.max() - raw.min())
    shape: FloatArray = config.night_trough_ratio + (1.0 - config.night_trough_ratio) * unit
    return shape


def weekly_profile(config: SimulationConfig) -> FloatArray:
    """Relative level of each hour of the week, shape ``(7, 24)``, Monday first.

    Parameters
    ----------
    config : SimulationConfig
        Simulation parameters.

    Returns
    -------
    numpy.ndarray
        Multipliers of the peak weekday level.
    """
    weekday = _day_shape(config, 0.0, 0.0)
    saturday = _day_shape(config, config.weekend_morning_delay_hours, 0.0)
    sunday = _day_shape(config, config.weekend_morning_delay_hours, config.sunday_evening_boost)
    shapes = [weekday] * _SATURDAY + [saturday, sunday]
    profile: FloatArray = np.stack(shapes) * np.asarray(config.day_levels)[:, None]
    return profile


def _yearly_factor(stamps: pd.DatetimeIndex, config: SimulationConfig) -> FloatArray:
    doy = stamps.dayofyear.to_numpy(dtype=np.float64)

    def bump(peak: float, width: float) -> FloatArray:
        # Distance on the yearly circle so late December and early January touch.
        distance = np.abs(doy - peak)
        distance = np.minimum(distance, _DAYS_PER_YEAR - distance)
        return np.exp(-0.5 * (distance / width) ** 2)

    season = bump(config.holiday_season_peak_doy, config.holiday_season_width_days)
    summer = bump(config.summer_dip_peak_doy, config.summer_dip_width_days)
    return 1.0 + config.holiday_season_lift * season - config.summer_dip * summer


def _holiday_factor(
    stamps: pd.DatetimeIndex, profile: FloatArray, config: SimulationConfig
) -> FloatArray:
    """Holidays look like a Sunday; Thanksgiving daytime and Christmas are lower."""
    days = stamps.normalize()
    hours = stamps.hour.to_numpy()
    dow = stamps.dayofweek.to_numpy()
    holidays = USFederalHolidayCalendar().holidays(days.min(), days.max())
    factor = np.ones(len(stamps))
    is_holiday = days.isin(holidays)
    factor[is_holiday] = (
        config.federal_holiday_level
        * profile[_SUNDAY, hours[is_holiday]]
        / profile[dow[is_holiday], hours[is_holiday]]
    )
    thanksgiving = days.isin(USThanksgivingDay.dates(days.min(), days.max()))
    first, last = config.thanksgiving_daytime_hours
    daytime = thanksgiving & (hours >= first) & (hours < last)
    factor[daytime] *= config.thanksgiving_daytime_level
    christmas = (stamps.month == _CHRISTMAS[0]) & (stamps.day == _CHRISTMAS[1])
    factor[christmas] *= config.christmas_level
    return factor


def _envelope(event: SaleEvent, ramp: float, decay: float) -> FloatArray:
    """Lift profile from ``event.start``: exponential ramp, then a decaying tail."""
    duration = int((event.end - event.start) / pd.Timedelta(hours=1))
    tail = int(np.ceil(_TAIL_CONSTANTS * decay))
    during = 1.0 - np.exp(-np.arange(1, duration + 1) / ramp)
    after = during[-1] * np.exp(-np.arange(1, tail + 1) / decay)
    return np.concatenate([during, after])


def sale_factor(
    stamps: pd.DatetimeIndex, events: list[SaleEvent], config: SimulationConfig
) -> FloatArray:
    """Multiplicative traffic lift of all sale events on a regular hourly grid.

    Parameters
    ----------
    stamps : pandas.DatetimeIndex
        Regular hourly timestamps.
    events : list of SaleEvent
        Non-overlapping events.
    config : SimulationConfig
        Simulation parameters.

    Returns
    -------
    numpy.ndarray
        Factor >= 1 per hour.
    """
    factor = np.ones(len(stamps))
    for event in events:
        response = config.sale_kind(event.kind)
        scale = response.lift * event.discount_pct / response.reference_discount
        envelope = _envelope(event, response.ramp_hours, response.decay_hours)
        offset = int((event.start - stamps[0]) / pd.Timedelta(hours=1))
        lo, hi = max(offset, 0), min(offset + len(envelope), len(stamps))
        if lo < hi:
            factor[lo:hi] *= 1.0 + scale * envelope[lo - offset : hi - offset]
    return factor


def _log_noise(n: int, config: SimulationConfig) -> FloatArray:
    white = component_rng(config.seed, "traffic_white_noise").normal(0.0, config.noise_sigma, n)
    shocks = component_rng(config.seed, "traffic_ar_noise").normal(0.0, config.ar_sigma, n)
    ar = np.empty(n)
    state = 0.0
    for i, shock in enumerate(shocks.tolist()):
        state = config.ar_phi * state + shock
        ar[i] = state
    return white + ar


def simulate_sessions(
    stamps: pd.DatetimeIndex, events: list[SaleEvent], config: SimulationConfig
) -> npt.NDArray[np.int64]:
    """Simulate sessions per hour over ``stamps`` (starting at ``config.start``).

    Parameters
    ----------
    stamps : pandas.DatetimeIndex
        Regular hourly grid starting at ``config.start``.
    events : list of SaleEvent
        Sale calendar.
    config : SimulationConfig
        Simulation parameters.

    Returns
    -------
    numpy.ndarray
        Non-negative integer sessions.
    """
    years = (stamps - stamps[0]) / pd.Timedelta(days=_DAYS_PER_YEAR)
    trend = config.base_peak_sessions * (1.0 + config.trend_growth_per_year) ** np.asarray(years)
    profile = weekly_profile(config)
    seasonal = profile[stamps.dayofweek.to_numpy(), stamps.hour.to_numpy()]
    drift = np.where(
        stamps >= pd.Timestamp(config.drift_start), 1.0 + config.drift_level_shift, 1.0
    )
    sessions = (
        trend
        * seasonal
        * _yearly_factor(stamps, config)
        * _holiday_factor(stamps, profile, config)
        * sale_factor(stamps, events, config)
        * drift
        * np.exp(_log_noise(len(stamps), config))
    )
    counts: npt.NDArray[np.int64] = np.rint(sessions).astype(np.int64)
    return counts

"""The statistics of the decision: boundaries against published values, the HAC variance by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from traffic_forecast.experiment.sequential import (
    bartlett_long_run_variance,
    daily_boundaries,
    diebold_mariano,
    obrien_fleming_spending,
    upper_boundaries,
)

# gsDesign::gsDesign(k = 5, test.type = 1, alpha = 0.025, sfu = sfLDOF)$upper$bound
GSDESIGN_LDOF_5_LOOKS = [4.877, 3.357, 2.680, 2.290, 2.031]


def test_boundaries_match_gsdesign_for_five_equal_looks() -> None:
    bounds = upper_boundaries([0.2, 0.4, 0.6, 0.8, 1.0], 0.025)
    np.testing.assert_allclose(bounds, GSDESIGN_LDOF_5_LOOKS, atol=1.5e-3)


@pytest.mark.parametrize("alpha", [0.025, 0.05], ids=["a025", "a05"])
def test_a_single_look_is_the_fixed_sample_test(alpha: float) -> None:
    assert upper_boundaries([1.0], alpha)[0] == pytest.approx(stats.norm.isf(alpha), abs=1e-9)


def test_spending_reaches_alpha_at_full_information() -> None:
    assert obrien_fleming_spending(np.array([1.0]), 0.05)[0] == pytest.approx(0.05)


def test_daily_looks_promote_a_random_walk_at_rate_alpha() -> None:
    # Brownian motion seen once a day, days 7..28: the chance of ever crossing is alpha.
    bounds = daily_boundaries(0.05, 7, 28)
    rng = np.random.default_rng(20240518)
    paths = np.cumsum(rng.standard_normal((200_000, 28)), axis=1)
    crossed = np.zeros(len(paths), dtype=bool)
    for day, bound in bounds.items():
        crossed |= paths[:, day - 1] / math.sqrt(day) >= bound
    assert crossed.mean() == pytest.approx(0.05, abs=0.002)
    assert list(bounds) == list(range(7, 29))
    assert bounds[7] > bounds[28] > stats.norm.isf(0.05)


def test_fractions_must_increase() -> None:
    with pytest.raises(ValueError, match="increase"):
        upper_boundaries([0.5, 0.5, 1.0], 0.05)


def test_bartlett_variance_by_hand() -> None:
    x = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    c = x - 3.0
    gamma = [float(c[k:] @ c[: len(c) - k]) / 5 for k in range(3)]
    by_hand = gamma[0] + 2 * (2 / 3) * gamma[1] + 2 * (1 / 3) * gamma[2]
    assert bartlett_long_run_variance(x, 2) == pytest.approx(by_hand)


def test_bartlett_variance_matches_statsmodels() -> None:
    sandwich = pytest.importorskip("statsmodels.stats.sandwich_covariance")
    api = pytest.importorskip("statsmodels.api")
    x = np.random.default_rng(7).standard_normal(300).cumsum() % 5
    fit = api.OLS(x, np.ones(len(x))).fit()
    expected = sandwich.cov_hac(fit, nlags=23, use_correction=False)[0, 0] * len(x)
    assert bartlett_long_run_variance(x, 23) == pytest.approx(expected, rel=1e-10)


def test_diebold_mariano_at_lag_zero_is_about_the_t_test() -> None:
    # The fixed-b bias factor at lag 0, 1 - 1/n + 1/(3 n^2), is the t test's (n - 1)/n
    # but for its last term: under 1 % apart at n = 7.
    d = np.array([0.5, -0.2, 1.1, 0.3, 0.9, -0.4, 0.7])
    test = diebold_mariano(d, 0)
    t = stats.ttest_1samp(d, 0.0)
    assert test.t == pytest.approx(t.statistic, rel=0.01)
    assert test.df == len(d) - 1
    assert test.z is not None
    assert stats.norm.sf(test.z) == pytest.approx(t.pvalue / 2, rel=0.03)


def test_diebold_mariano_needs_two_observations_and_variation() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        diebold_mariano(np.array([1.0]), 0)
    assert diebold_mariano(np.zeros(5), 1).z is None

"""sktime's ``MSTL`` transformer, able to transform hours it was not fitted on.

sktime 1.2's ``MSTL`` refits statsmodels' MSTL when it transforms unseen hours (what a
forecaster's ``update`` asks when live actuals arrive), then hands statsmodels' numpy output to
a helper that accepts only pandas, and fails; it would also return the whole series, not the
hours asked. This subclass does the same refit, and returns the hours asked with their daily and
weekly profiles removed. Everything else is sktime's. Drop it once sktime's own does this.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sktime.transformations.detrend import mstl as sktime_mstl


class MSTL(sktime_mstl.MSTL):  # type: ignore[misc]  # sktime is untyped
    """``MSTL`` whose transform of unseen hours works (sktime 1.2's raises ``ValueError``)."""

    def _transform(self, X: pd.Series, y: Any = None) -> Any:
        if self.return_components or X.index.equals(self._X.index):
            return super()._transform(X, y)
        from statsmodels.tsa import seasonal  # noqa: PLC0415  # imported when used, as sktime does

        whole = X.combine_first(self._X)
        refitted = seasonal.MSTL(
            whole.to_numpy(),
            periods=self.periods,
            windows=self.windows,
            lmbda=self.lmbda,
            iterate=self.iterate,
            stl_kwargs=self.stl_kwargs,
        ).fit()
        profiles = np.asarray(refitted.seasonal).reshape(len(whole), -1).sum(axis=1)
        removed = pd.Series(whole.to_numpy() - profiles, index=whole.index, name=X.name)
        return removed.loc[X.index]

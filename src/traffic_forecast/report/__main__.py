"""``python -m traffic_forecast.report``: the same as ``traffic-forecast report``."""

from __future__ import annotations

import sys

from traffic_forecast.report.gather import main

sys.exit(main())

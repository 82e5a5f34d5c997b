"""``python -m traffic_forecast``: the same as ``traffic-forecast``."""

import sys

from traffic_forecast.cli import main

sys.exit(main())

"""Allow ``python -m traffic_forecast.data.simulate``."""

from traffic_forecast.data.simulate.cli import main

raise SystemExit(main())

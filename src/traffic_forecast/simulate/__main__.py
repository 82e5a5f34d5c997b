"""Allow ``python -m traffic_forecast.simulate``."""

from traffic_forecast.simulate.cli import main

raise SystemExit(main())

"""Watching the served model: drift, decay, and retraining that comes back as a pull request."""

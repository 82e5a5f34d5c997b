"""Serving: the packaged model's files, its forecasting core, the HTTP contract and guard."""

"""The forecasting library that the stages, serving and monitoring share.

Features, forecasters, backtests, metrics, intervals, capacity and plots: functions of config
and frames, so the pipeline and the service cannot compute a thing two ways.
"""

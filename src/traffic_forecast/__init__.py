"""GitOps ML template: hourly e-retail traffic forecasting."""

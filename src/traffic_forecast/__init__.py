"""GitOps ML template: hourly e-retail traffic forecasting."""

import warnings

# With PySpark installed (fleet mode), Pandera imports pyspark.pandas, which warns on every start
# under pandas 3 that it "does not yet fully support" it. Nothing here uses pyspark.pandas; the
# warning would otherwise precede every command's output (a one-line error would become three).
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)

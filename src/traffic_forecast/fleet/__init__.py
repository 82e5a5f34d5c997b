"""Fleet mode: many series (region x service) on Apache Spark, beside the single-series loop."""

"""Raw data: what it must look like (schemas, tables), where it comes from (simulator, DVC)."""

"""The DVC pipeline stages, one module each: validate → features → train → evaluate."""

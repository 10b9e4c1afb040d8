"""Configuration: the only reader of the environment (settings, OTLP exporter settings)."""

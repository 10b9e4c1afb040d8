"""Delivery: the shipper that drains the outbox over OTLP, its encoders, transports and background worker."""

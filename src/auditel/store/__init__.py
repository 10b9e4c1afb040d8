"""Storage: the SQLite outbox, the shipping queue, the fork gate and key files — the only package with SQL."""

"""Redaction: the rules and the redactor that scrub secrets and PII before anything is hashed, stored or shipped."""

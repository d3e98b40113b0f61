"""Shared pieces of the REST API: API key authentication, errors, idempotency, pagination."""

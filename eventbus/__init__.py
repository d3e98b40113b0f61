"""Transactional outbox, inbox, relay and consumers over a pluggable event bus.

This package imports no domain module: domain apps register their concrete
outbox, inbox and dead-letter models and their handlers with it.
"""

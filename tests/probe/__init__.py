"""A minimal bus module for the event bus's own tests.

It produces and consumes ``probe.*`` events and records every application in
``ProbeEffect``, in the same transaction as its inbox row, so tests can count
effects across processes.
"""

"""Tenants: the businesses that bill their customers on this platform."""

"""Operations: the composition root that calls every module's services and selectors.

Imports of customers and subscriptions, the status report, demo data and the
embedded demo live here, because each of them spans several modules.
"""

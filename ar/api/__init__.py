"""REST API of the ar module: customers and invoices."""

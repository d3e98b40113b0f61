"""REST API of the payments module: payment methods and payments with their attempts."""

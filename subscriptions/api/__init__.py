"""REST API of the subscriptions module: plans, subscriptions and bill runs."""

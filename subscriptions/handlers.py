"""Events the subscriptions module consumes and how it applies them."""

from eventbus.registry import HandlerRegistry

registry = HandlerRegistry()

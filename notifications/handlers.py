"""Events the notifications module consumes and how it applies them."""

from eventbus.registry import HandlerRegistry

registry = HandlerRegistry()

"""defer_to_delivery_end: work handlers leave for the end of their delivery."""

import pytest

from eventbus.context import defer_to_delivery_end, deferred_work


def test_outside_a_delivery_runs_at_once():
    calls = []

    defer_to_delivery_end(calls.append, "now")

    assert calls == [["now"]]


def test_consecutive_items_share_one_call():
    first, second = [], []

    with deferred_work():
        defer_to_delivery_end(first.append, 1)
        defer_to_delivery_end(first.append, 2)
        defer_to_delivery_end(second.append, 3)
        assert first == []
        assert second == []

    assert first == [[1, 2]]
    assert second == [[3]]


def test_order_of_deferral_kept():
    """Items of two callbacks that alternate run in the order their messages came."""
    calls = []

    def pay(items):
        calls.append(("pay", items))

    def bill(items):
        calls.append(("bill", items))

    with deferred_work():
        for callback, item in ((pay, 1), (pay, 2), (bill, 3), (pay, 4)):
            defer_to_delivery_end(callback, item)

    assert calls == [("pay", [1, 2]), ("bill", [3]), ("pay", [4])]


def test_work_deferred_by_deferred_work_runs_too():
    calls = []

    def first_step(items):
        calls.append(("first", items))
        defer_to_delivery_end(second_step, "later")

    def second_step(items):
        calls.append(("second", items))

    with deferred_work():
        defer_to_delivery_end(first_step, "a")

    assert calls == [("first", ["a"]), ("second", ["later"])]


def test_failed_block_runs_nothing():
    calls = []

    with pytest.raises(RuntimeError), deferred_work():
        defer_to_delivery_end(calls.append, "dropped")
        raise RuntimeError("handler failed")

    assert calls == []
    defer_to_delivery_end(calls.append, "after")
    assert calls == [["after"]]

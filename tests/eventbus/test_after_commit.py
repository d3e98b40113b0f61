"""on_commit_collect: one call per callback and transaction, with the items collected in it."""

import logging

import pytest
from django.db import transaction

from eventbus.after_commit import on_commit_collect

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
ALIAS = "notifications"


class Recorder:
    def __init__(self):
        self.calls: list[list] = []

    def __call__(self, items: list) -> None:
        self.calls.append(list(items))


def test_items_of_one_transaction_share_one_call():
    record = Recorder()

    with transaction.atomic(using=ALIAS):
        for item in ("a", "b", "c"):
            on_commit_collect(record, item, using=ALIAS)
        assert record.calls == []

    assert record.calls == [["a", "b", "c"]]


def test_each_callback_gets_its_own_items():
    first, second = Recorder(), Recorder()

    with transaction.atomic(using=ALIAS):
        on_commit_collect(first, 1, using=ALIAS)
        on_commit_collect(second, 2, using=ALIAS)
        on_commit_collect(first, 3, using=ALIAS)

    assert first.calls == [[1, 3]]
    assert second.calls == [[2]]


def test_each_transaction_gets_its_own_call():
    record = Recorder()

    for item in ("a", "b"):
        with transaction.atomic(using=ALIAS):
            on_commit_collect(record, item, using=ALIAS)

    assert record.calls == [["a"], ["b"]]


def test_rollback_drops_the_items():
    record = Recorder()

    with pytest.raises(RuntimeError), transaction.atomic(using=ALIAS):
        on_commit_collect(record, "lost", using=ALIAS)
        raise RuntimeError("handler failed")
    with transaction.atomic(using=ALIAS):
        on_commit_collect(record, "kept", using=ALIAS)

    assert record.calls == [["kept"]]


def test_savepoint_rollback_drops_only_its_items():
    record = Recorder()

    with transaction.atomic(using=ALIAS):
        on_commit_collect(record, "before", using=ALIAS)
        with pytest.raises(RuntimeError), transaction.atomic(using=ALIAS):
            on_commit_collect(record, "inside", using=ALIAS)
            raise RuntimeError("nested step failed")
        on_commit_collect(record, "after", using=ALIAS)

    assert sorted(item for call in record.calls for item in call) == ["after", "before"]


def test_outside_a_transaction_runs_at_once():
    record = Recorder()

    on_commit_collect(record, "now", using=ALIAS)

    assert record.calls == [["now"]]


def test_robust_callback_error_logged(caplog):
    after = Recorder()

    def fails(items):
        raise RuntimeError(f"could not handle {items}")

    with caplog.at_level(logging.ERROR), transaction.atomic(using=ALIAS):
        on_commit_collect(fails, "x", using=ALIAS, robust=True)
        on_commit_collect(after, "y", using=ALIAS)

    assert after.calls == [["y"]]
    (record,) = [record for record in caplog.records if "fails" in record.getMessage()]
    assert "(collected)" in record.getMessage()

"""The console's sign-in lockouts, counted in the job store: the fifth failed sign-in in a row
locks the name for fifteen minutes, for every process that reads the same database."""

from __future__ import annotations

from datetime import timedelta

from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.conftest import ManualClock

LOCK = {"lock_after": 5, "lock_for": timedelta(minutes=15)}


def test_the_fifth_failure_in_a_row_locks_the_name_for_everyone_until_it_expires(
    store: JobStore, clock: ManualClock
):
    assert [store.sign_in_failed("ana", **LOCK) for _ in range(4)] == [False] * 4
    assert store.sign_in_locked_until("ana") is None
    assert store.sign_in_failed("ana", **LOCK) is True

    # Another console process (its own store object on the same database) sees the lock.
    other = JobStore(store.engine, clock=clock)
    assert other.sign_in_locked_until("ana") == clock.now + timedelta(minutes=15)
    assert other.sign_in_locked_until("vic") is None  # per name

    clock.advance(15 * 60 - 1)
    assert other.sign_in_locked_until("ana") is not None
    clock.advance(1)
    assert other.sign_in_locked_until("ana") is None
    # The count started again at the lock: four more failures do not lock it again.
    assert [store.sign_in_failed("ana", **LOCK) for _ in range(4)] == [False] * 4


def test_a_good_sign_in_starts_the_count_again(store: JobStore):
    for _ in range(4):
        store.sign_in_failed("ana", **LOCK)
    store.sign_in_succeeded("ana")
    assert [store.sign_in_failed("ana", **LOCK) for _ in range(4)] == [False] * 4
    assert store.sign_in_locked_until("ana") is None


def test_a_name_longer_than_any_account_is_counted_too(store: JobStore):
    guess = "x" * 5000  # whatever the form posts
    assert [store.sign_in_failed(guess, **LOCK) for _ in range(5)][-1] is True
    assert store.sign_in_locked_until(guess) is not None
    assert store.sign_in_locked_until("x" * 4999) is None

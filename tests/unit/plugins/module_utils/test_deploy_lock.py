"""The deploy lock engine on a real directory: take, refuse naming the holder, expiry and break, release only
one's own, check mode, and exactly one winner among concurrent takers (threads and processes)."""
from __future__ import annotations

import json
import multiprocessing
import os
import threading

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import deploy_lock as dl
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import SKIP_CHECK_MODE


def who(run_id, **extra):
    identity = {"run_id": run_id, "controller": "ctl-%s" % run_id, "user": "user-%s" % run_id,
                "play": "deploy.yml", "version": "v-%s" % run_id}
    identity.update(extra)
    return identity


@pytest.fixture()
def lock(tmp_path):
    return str(tmp_path / ".release-lock")


def test_acquire_writes_the_holder_and_a_pass_record(lock):
    result = dl.acquire(lock, who("a"), now=1_000_000)
    assert result["acquired"] and result["changed"] and not result["refused"]
    holder = json.loads(open(lock, encoding="utf-8").read())
    assert holder["run_id"] == "a" and holder["user"] == "user-a" and holder["controller"] == "ctl-a"
    assert holder["version"] == "v-a" and holder["play"] == "deploy.yml" and holder["started_epoch"] == 1_000_000
    assert holder["started"] == "1970-01-12T13:46:40+00:00"
    record = result["records"][0]
    assert record["criterion"] == "deploy.lock" and record["status"] == "pass"
    assert "user-a@ctl-a" in record["summary"]
    assert os.listdir(os.path.dirname(lock)) == [".release-lock"]  # no temporary left


def test_acquire_again_by_the_same_run_changes_nothing(lock):
    dl.acquire(lock, who("a"))
    again = dl.acquire(lock, who("a"))
    assert again["acquired"] and again["already_held"] and not again["changed"]
    assert again["records"][0]["status"] == "pass"


def test_another_run_is_refused_naming_the_holder(lock):
    dl.acquire(lock, who("a"), now=1000)
    refused = dl.acquire(lock, who("b"), expiry=3600, now=1060)
    assert refused["refused"] and not refused["acquired"] and not refused["changed"]
    summary = refused["records"][0]["summary"]
    assert refused["records"][0]["status"] == "fail"
    for part in ("user-a@ctl-a", "deploy.yml", "version v-a", "run a", "since 1970-01-01T00:16:40+00:00", "60s ago"):
        assert part in summary, summary
    assert json.loads(open(lock, encoding="utf-8").read())["run_id"] == "a"


def test_an_expired_lock_is_broken_only_when_asked(lock):
    dl.acquire(lock, who("a"), now=1000)
    kept = dl.acquire(lock, who("b"), expiry=600, now=2000)
    assert kept["refused"] and "release_lock_break=true" in kept["records"][0]["summary"]
    assert kept["records"][0]["evidence"]["expired"] is True
    not_yet = dl.acquire(lock, who("b"), expiry=600, break_expired=True, now=1500)
    assert not_yet["refused"], "a lock younger than its expiry is never broken"
    broken = dl.acquire(lock, who("b"), expiry=600, break_expired=True, now=2000)
    assert broken["acquired"] and broken["broken"]["run_id"] == "a"
    summary = broken["records"][0]["summary"]
    assert "BROKE the expired lock of user-a@ctl-a" in summary and "since 1970-01-01T00:16:40+00:00" in summary
    assert json.loads(open(lock, encoding="utf-8").read())["run_id"] == "b"
    assert sorted(os.listdir(os.path.dirname(lock))) == [".release-lock"]


def test_expiry_zero_never_expires(lock):
    dl.acquire(lock, who("a"), now=0)
    assert dl.acquire(lock, who("b"), expiry=0, break_expired=True, now=10 ** 9)["refused"]


def test_release_only_ones_own_lock_unless_forced(lock):
    dl.acquire(lock, who("a"))
    other = dl.release(lock, "b")
    assert other["refused"] and not other["changed"] and os.path.exists(lock)
    assert "user-a@ctl-a" in other["records"][0]["summary"]
    own = dl.release(lock, "a")
    assert own["changed"] and not os.path.exists(lock)
    free = dl.release(lock, "a")
    assert not free["changed"] and free["records"][0]["status"] == "pass"
    dl.acquire(lock, who("a"))
    forced = dl.release(lock, "b", force=True)
    assert forced["changed"] and forced["records"][0]["evidence"]["forced"] and not os.path.exists(lock)


def test_check_mode_takes_breaks_and_releases_nothing(lock):
    free = dl.acquire(lock, who("a"), check_mode=True)
    assert not free["acquired"] and not os.path.exists(lock)
    assert free["records"][0]["status"] == "skipped" and free["records"][0]["skip_reason"] == SKIP_CHECK_MODE
    dl.acquire(lock, who("a"), now=1000)
    held = dl.acquire(lock, who("b"), check_mode=True, now=1001)
    assert held["refused"] and held["records"][0]["status"] == "fail"
    assert held["records"][0]["summary"].startswith("check mode: ")
    would_break = dl.acquire(lock, who("b"), expiry=10, break_expired=True, check_mode=True, now=2000)
    assert would_break["records"][0]["skip_reason"] == SKIP_CHECK_MODE and "would break" in would_break["records"][0]["summary"]
    would_release = dl.release(lock, "a", check_mode=True)
    assert would_release["records"][0]["skip_reason"] == SKIP_CHECK_MODE and os.path.exists(lock)
    assert json.loads(open(lock, encoding="utf-8").read())["run_id"] == "a"


def test_status_says_free_or_held(lock):
    assert dl.status(lock)["holder"] is None
    dl.acquire(lock, who("a"), now=100)
    held = dl.status(lock, expiry=50, now=200)
    assert held["holder"]["run_id"] == "a" and held["records"][0]["evidence"]["expired"]
    assert "user-a@ctl-a" in held["records"][0]["summary"]


def test_an_unreadable_lock_is_an_error_never_free(lock):
    with open(lock, "w", encoding="utf-8") as handle:
        handle.write("{half")
    with pytest.raises(dl.LockError, match="cannot be read"):
        dl.acquire(lock, who("a"))
    with open(lock, "w", encoding="utf-8") as handle:
        json.dump({"something": "else"}, handle)
    with pytest.raises(dl.LockError, match="not a deploy lock"):
        dl.release(lock, "a")


def test_missing_directory_and_missing_run_id_are_errors(tmp_path):
    with pytest.raises(dl.LockError, match="does not exist"):
        dl.acquire(str(tmp_path / "nowhere" / ".release-lock"), who("a"))
    with pytest.raises(dl.LockError, match="run_id"):
        dl.acquire(str(tmp_path / ".release-lock"), who(""))


def race(count, take):
    """``take(index)`` from ``count`` threads released at once; their results by index."""
    barrier = threading.Barrier(count)
    results = {}

    def run(index):
        barrier.wait()
        results[index] = take(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_threads_have_exactly_one_winner(lock):
    results = race(16, lambda index: dl.acquire(lock, who("t%d" % index)))
    winners = [i for i, r in results.items() if r["acquired"]]
    assert len(winners) == 1, results
    assert all(r["refused"] for i, r in results.items() if i not in winners)
    assert json.loads(open(lock, encoding="utf-8").read())["run_id"] == "t%d" % winners[0]


def _take_in_process(path, index, start, queue):
    start.wait()
    queue.put((index, dl.acquire(path, who("p%d" % index))["acquired"]))


def test_concurrent_processes_have_exactly_one_winner(lock):
    context = multiprocessing.get_context("fork")
    start = context.Event()
    queue = context.Queue()
    procs = [context.Process(target=_take_in_process, args=(lock, i, start, queue)) for i in range(8)]
    for proc in procs:
        proc.start()
    start.set()
    outcomes = dict(queue.get(timeout=30) for _proc in procs)
    for proc in procs:
        proc.join(timeout=30)
    winners = [i for i, won in outcomes.items() if won]
    assert len(winners) == 1, outcomes
    holder = json.loads(open(lock, encoding="utf-8").read())
    assert holder["run_id"] == "p%d" % winners[0], "the lock visible is complete and the winner's"


def test_concurrent_breakers_of_one_expired_lock_have_exactly_one_winner(lock):
    dl.acquire(lock, who("old"), now=0)
    results = race(8, lambda index: dl.acquire(lock, who("b%d" % index), expiry=10, break_expired=True))
    winners = [i for i, r in results.items() if r["acquired"]]
    assert len(winners) == 1, results
    # The winner broke the old lock, or found it just removed by a breaker that then lost the race to take it.
    assert json.loads(open(lock, encoding="utf-8").read())["run_id"] == "b%d" % winners[0]
    assert sum(1 for r in results.values() if r["broken"]) <= 1

"""The controller's rate-limit ledger (plugin_utils/rate_ledger.py): a missing, corrupt or unwritable entry never
fails a run, old sends are dropped, and concurrent runs against one service take turns (real processes)."""
from __future__ import annotations

import json
import multiprocessing
import os
import stat
import time

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import rate_ledger as rl

ORIGIN = "http://127.0.0.1:8000"


def entry(directory, **kwargs):
    return rl.LedgerEntry(str(directory), ORIGIN, "controller", 60.0, **kwargs)


def test_a_missing_entry_starts_empty_and_is_written_atomically(tmp_path):
    now = time.time()
    with entry(tmp_path) as first:
        assert first.history == [] and first.warnings == []
        assert first.record([now - 1.0, now])
    document = json.loads(open(first.path, encoding="utf-8").read())
    assert document["origin"] == ORIGIN and document["client"] == "controller"
    assert document["sends"] == [round(now - 1.0, 3), round(now, 3)]
    assert stat.S_IMODE(os.stat(first.path).st_mode) & 0o077 == 0, "the entry is readable by others"
    with entry(tmp_path) as second:
        assert second.history == [pytest.approx(now - 1.0, abs=0.001), pytest.approx(now, abs=0.001)]
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".entry-")], "a temporary file was left"


def test_sends_outside_the_window_are_dropped(tmp_path):
    now = time.time()
    with entry(tmp_path) as first:
        first.record([now - 120.0, now - 61.0, now - 30.0])
    with entry(tmp_path) as second:
        assert second.history == [pytest.approx(now - 30.0, abs=0.001)]
    assert len(json.loads(open(second.path, encoding="utf-8").read())["sends"]) == 1


@pytest.mark.parametrize("content, words", [
    ("{not json", "unreadable"),
    ('{"sends": "yesterday"}', "not a ledger"),
    ('["a", "list"]', "not a ledger"),
    ('{"sends": [1, true]}', "not a ledger"),
])
def test_a_corrupt_entry_is_started_afresh_with_a_warning(tmp_path, content, words):
    path = tmp_path / rl.entry_name(ORIGIN, "controller")
    path.write_text(content, encoding="utf-8")
    now = time.time()
    with entry(tmp_path) as ledger:
        assert ledger.history == []
        assert any(words in warning for warning in ledger.warnings), ledger.warnings
        assert ledger.record([now])
    assert json.loads(path.read_text(encoding="utf-8"))["sends"] == [round(now, 3)]


def test_an_unusable_directory_warns_and_the_run_goes_on(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    with entry(blocker / "ledger") as ledger:
        assert ledger.history == []
        assert not ledger.record([time.time()])
    assert any("cannot be used" in warning for warning in ledger.warnings)
    assert any("could not be written" in warning for warning in ledger.warnings)


def _hold(directory, seconds, started, sends):
    with rl.LedgerEntry(directory, ORIGIN, "controller", 60.0) as ledger:
        started.set()
        time.sleep(seconds)
        ledger.record(sends)


def test_concurrent_runs_take_turns_and_see_each_others_sends(tmp_path):
    started = multiprocessing.Event()
    now = time.time()
    other = multiprocessing.Process(target=_hold, args=(str(tmp_path), 0.6, started, [now]))
    other.start()
    try:
        assert started.wait(10)
        with entry(tmp_path, lock_timeout=10) as ledger:
            assert ledger.waited_for_lock >= 0.3
            assert ledger.history == [pytest.approx(now, abs=0.001)]
            ledger.record([now + 0.5])
    finally:
        other.join(10)
    with entry(tmp_path) as final:
        assert len(final.history) == 2


def test_a_lock_held_too_long_is_reported_and_the_run_goes_on(tmp_path):
    started = multiprocessing.Event()
    other = multiprocessing.Process(target=_hold, args=(str(tmp_path), 1.5, started, [time.time()]))
    other.start()
    try:
        assert started.wait(10)
        with entry(tmp_path, lock_timeout=0.2) as ledger:
            assert any("another run held the rate-limit ledger" in warning for warning in ledger.warnings)
            ledger.record([time.time()])
    finally:
        other.join(10)
    with entry(tmp_path) as final:
        assert len(final.history) == 2  # the later writer read the entry again: no send was lost


def test_run_with_ledger_hands_the_history_in_and_records_the_sends(tmp_path):
    now = time.time()
    seen = []

    def execute(args):
        seen.append(args["rate_limit"]["history"])
        return {"rate_limit": {"counted": 1, "sent": [now]}, "records": []}

    options = {"ledger_dir": str(tmp_path), "window": 60.0}
    first = rl.run_with_ledger(execute, {"base_url": ORIGIN}, options, ORIGIN, "controller", 5)
    second = rl.run_with_ledger(execute, {"base_url": ORIGIN}, options, ORIGIN, "controller", 5)
    assert seen[0] == [] and seen[1] == [pytest.approx(now, abs=0.001)]
    assert "sent" not in first["rate_limit"] and first["rate_limit"]["ledger"]["history_in_window"] == 0
    assert second["rate_limit"]["ledger"]["history_in_window"] == 1
    # Other clients and services have entries of their own.
    third = rl.run_with_ledger(execute, {"base_url": ORIGIN}, options, ORIGIN, "app1.example.com", 5)
    assert third["rate_limit"]["ledger"]["history_in_window"] == 0


def test_no_ledger_when_switched_off_or_unlimited(tmp_path):
    calls = []

    def execute(args):
        calls.append(args)
        return {"rate_limit": {"sent": [time.time()]}}

    rl.run_with_ledger(execute, {"x": 1}, {"ledger": False, "ledger_dir": str(tmp_path)}, ORIGIN, "controller", 5)
    rl.run_with_ledger(execute, {"x": 1}, {"requests": 0, "ledger_dir": str(tmp_path)}, ORIGIN, "controller", 5)
    assert calls == [{"x": 1}, {"x": 1}] and os.listdir(tmp_path) == []


def test_the_client_is_the_machine_the_requests_leave_from():
    assert rl.client_of(None, {"inventory_hostname": "app1"}, "local") == "controller"
    assert rl.client_of("localhost", {"inventory_hostname": "app1"}, "ssh") == "controller"
    assert rl.client_of(None, {"inventory_hostname": "app1", "ansible_host": "10.0.0.5"}, "ssh") == "10.0.0.5"
    assert rl.client_of("bastion", {"inventory_hostname": "app1"}, "ssh") == "bastion"


def test_sends_in_the_same_millisecond_are_all_kept(tmp_path):
    now = round(time.time(), 3)
    with entry(tmp_path) as first:
        first.record([now, now, now])
    with entry(tmp_path) as second:
        assert len(second.history) == 3
        second.record([now])
    with entry(tmp_path) as third:
        assert len(third.history) == 4

"""The notice printed before a call that must wait for the service's rate-limit window: foreseen on a fake clock
from the ledger's history and the call's planned requests (the health paths are not counted), silent when the
window has room, and worded for a deadline that comes first."""
from __future__ import annotations

from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import rate_ledger as rl

from scripted_http import FakeClock

BASE = "http://127.0.0.1:8000"
PROBES = {"base_url": BASE, "probes": [{"kind": "healthz"}, {"kind": "readyz"}, {"name": "openapi", "path": "/openapi.json"},
                                       {"name": "me", "path": "/v1/me"}, {"kind": "https_redirect"}]}


def test_the_planned_requests_are_one_per_probe_and_reading_admin_endpoint():
    admin = dict(PROBES, admin={"endpoints": [{"name": "jobs", "path": "/admin/jobs"},
                                              {"name": "cleanup", "path": "/admin/cleanup", "method": "POST"}]})
    assert rl.planned_requests(admin) == [("GET", BASE + "/healthz"), ("GET", BASE + "/readyz"),
                                          ("GET", BASE + "/openapi.json"), ("GET", BASE + "/v1/me"),
                                          ("GET", BASE + "/admin/jobs")]
    matrix = {"base_url": BASE, "endpoints": [{"name": "stats", "path": "/admin/stats"}, "not a dict"]}
    assert rl.planned_requests(matrix) == [("GET", BASE + "/admin/stats")]
    assert rl.planned_requests({"probes": [{"path": "/x"}]}) == []  # no base_url: the module says so


def test_a_full_window_is_announced_with_how_long_and_why():
    clock = FakeClock(start=10000.0)
    # 28 sends of an earlier run, 19 s to 5 s ago: 1 slot of the 29 (30 less 1 in reserve) is free now.
    history = [clock.now - 19.0 + 0.5 * i for i in range(28)]
    notice = rl.window_notice({"history": history}, BASE, rl.planned_requests(PROBES), clock=clock)
    # 2 counted requests (/healthz and /readyz are exempt, the redirect probe goes to http://): the 2nd waits for the
    # oldest send (19 s ago) to leave the 60 s window.
    assert notice == ("waiting about 41 s for the rate-limit window of %s before this call's requests can go (30 "
                      "requests per 60 s, 1 kept in reserve; 28 sent within the window by earlier runs from this "
                      "controller; 2 counted requests planned, retries on top)" % BASE)
    delegated = rl.window_notice({"history": history}, BASE, rl.planned_requests(PROBES), client="bastion", clock=clock)
    assert "earlier runs from bastion" in delegated


def test_room_in_the_window_or_only_exempt_requests_say_nothing():
    clock = FakeClock(start=10000.0)
    history = [clock.now - 10.0] * 20
    assert rl.window_notice({"history": history}, BASE, rl.planned_requests(PROBES), clock=clock) is None
    full = [clock.now - 10.0] * 29
    health_only = [("GET", BASE + "/healthz"), ("GET", BASE + "/readyz")]
    assert rl.window_notice({"history": full}, BASE, health_only, clock=clock) is None
    assert rl.window_notice({"history": []}, BASE, rl.planned_requests(PROBES), clock=clock) is None
    # A bad sub-option is the module's to name: no notice, no traceback.
    assert rl.window_notice({"history": full, "requests": "many"}, BASE, health_only, clock=clock) is None


def test_a_deadline_before_the_window_has_room_is_said_so():
    clock = FakeClock(start=10000.0)
    history = [clock.now - 1.0, clock.now - 0.5]
    options = {"history": history, "requests": 3, "window": 120.0, "margin": 1}
    notice = rl.window_notice(options, BASE, [("GET", BASE + "/v1/me")], deadline=5.0, clock=clock)
    assert notice.startswith("the rate-limit window of %s has no room for this call's requests for about 119 s, after "
                             "its deadline (5 s): the requests that do not fit are not sent (3 requests per 120 s, 1 "
                             "kept in reserve; 2 sent" % BASE)


def test_run_with_ledger_announces_before_the_module_runs(tmp_path):
    events = []
    options = {"ledger_dir": str(tmp_path), "window": 60.0, "requests": 2, "margin": 1}

    def execute(args):
        events.append("module")
        return {"rate_limit": {"sent": [rl.time.time()]}}
    args = {"base_url": BASE, "probes": [{"name": "me", "path": "/v1/me"}]}
    rl.run_with_ledger(execute, args, options, BASE, "controller", 5, announce=events.append)
    assert events == ["module"]  # an empty window: nothing to say
    rl.run_with_ledger(execute, args, options, BASE, "controller", 5, announce=events.append)
    assert events[1].startswith("waiting about ") and "1 sent within the window by earlier runs" in events[1]
    assert events[2] == "module"

"""The canary role's rollback against a real Caddy 2.6.2: it is done only when Caddy no longer routes to the canary.

Each test resumes a canary whose first stage failed (the state file says so), so the role goes straight to the
rollback's weight-0 call. Caddy's running configuration is changed out of band first (the canary in, the files on
disk unchanged), as an operator's manual ``/load`` or a Caddy that kept an old file would leave it:
- in the service's own layout (Caddyfile.canary written whole from its template, reloaded by ``caddy reload``, the
  role's default reload mode, and read back by a command since the service does not publish Caddy's admin API) the
  weight-0 call sees the drift, reloads and verifies: traffic is off the canary and the canary is removed;
- when Caddy cannot be brought back (its Caddyfile lists the canary inline and does not import the file the role
  writes), the call is retried, then the run is NO-GO saying that traffic may still reach the canary, with the
  upstreams seen, and the canary is left running."""
from __future__ import annotations

import datetime
import json
import sys

import pytest

from monitoring import TEMPLATE_PLACEHOLDER, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def rolled_back_summary(report):
    return next(r["summary"] for c in report["criteria"] if c["criterion"] == "canary.rolled_back" for r in c["records"])


def failed_stage_state(env):
    """A canary of the version and stages canary_vars runs, whose first stage failed: a re-run rolls it back at
    once."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    plan = env.canary_vars()
    first = plan["canary_stages"][0]
    env.state_file.write_text(json.dumps({
        "version": plan["canary_version"], "stages": plan["canary_stages"], "status": "running", "started": now,
        "updated": now, "started_by": "ops (canary)", "history": [],
        "steps": [{"weight": first, "status": "fail", "accepted": False, "at": now, "parts": [],
                   "summary": "stage %d %%: slo.error_rate failed" % first}]}))


def dials(env):
    return sorted(set(dial for handler in env.caddy.running_dials() for dial in handler))


def drift_to_the_canary(env):
    """Caddy's running configuration sends half the requests to the canary; no file on disk changes."""
    env.caddy.load_text(env.caddy.inline_text([env.stable_hostport, env.canary_hostport]))
    assert dials(env) == sorted([env.stable_hostport, env.canary_hostport])


def service_template(env, path):
    """The harness's Caddyfile in the service's template form: the upstreams inline after reverse_proxy."""
    text = env.caddy.caddyfile_text().replace("reverse_proxy {\n\t\timport %s\n" % env.caddy.upstreams_file,
                                              "reverse_proxy %s {\n" % TEMPLATE_PLACEHOLDER)
    assert TEMPLATE_PLACEHOLDER in text
    path.write_text(text)
    return path


def test_a_drifted_caddy_is_repaired_by_the_rollback_in_the_services_layout(canary_env, canary_playbook, tmp_path):
    failed_stage_state(canary_env)
    canary_env.services.start("canary")
    drift_to_the_canary(canary_env)
    caddyfile = tmp_path / "Caddyfile.canary"
    command = ["caddy", "reload", "--config", str(caddyfile), "--adapter", "caddyfile",
               "--address", canary_env.caddy.admin_address]
    # The role's default read-back with the command reload: a command prints Caddy's /config/ (in the service,
    # `docker compose exec -T caddy wget -qO- ...`); the admin URL leads nowhere, as an unpublished admin API would.
    read_config = [sys.executable, "-c", "import sys, urllib.request; "
                   "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=60).read().decode())",
                   canary_env.caddy.admin_url + "/config/"]
    proc, report, dummy = canary_playbook(
        canary_caddy_upstreams_file="", canary_caddy_template=str(service_template(canary_env, tmp_path / "tpl")),
        canary_caddyfile=str(caddyfile), canary_caddy_reload="command", canary_caddy_reload_command=command,
        canary_caddy_config_command=read_config, canary_caddy_admin_url="http://127.0.0.1:%d" % free_port())
    assert report and proc.returncode != 0 and report["verdict"] == "NO-GO", proc.stdout[-3000:]
    summary = rolled_back_summary(report)
    assert "traffic may still reach the canary" not in summary, summary
    assert json.loads(canary_env.state_file.read_text())["status"] == "rolled_back"
    assert dials(canary_env) == [canary_env.stable_hostport]
    assert [entry["address"] for entry in canary_env.caddy.upstreams()] == [canary_env.stable_hostport]
    assert "reverse_proxy %s {" % canary_env.stable_hostport in caddyfile.read_text()
    assert canary_env.services.pid("canary") is None, "traffic is off the canary: it is removed"


def test_a_rollback_that_cannot_take_traffic_off_the_canary_is_nogo_and_keeps_it(canary_env, canary_playbook, tmp_path):
    failed_stage_state(canary_env)
    canary_env.services.start("canary")
    drift_to_the_canary(canary_env)
    # A Caddyfile that lists the canary inline and imports nothing: every reload of it keeps the canary in.
    static = tmp_path / "Caddyfile.static"
    static.write_text(canary_env.caddy.inline_text([canary_env.stable_hostport, canary_env.canary_hostport]))
    proc, report, dummy = canary_playbook(canary_caddyfile=str(static), canary_caddy_rollback_retries=1,
                                          canary_caddy_rollback_delay=0)
    assert report and proc.returncode != 0 and report["verdict"] == "NO-GO", proc.stdout[-3000:]
    summary = rolled_back_summary(report)
    assert ("taking traffic off the canary failed, traffic may still reach the canary (Caddy's upstreams seen: %s; "
            "2 tries)" % ", ".join(sorted([canary_env.stable_hostport, canary_env.canary_hostport]))) in summary
    assert "Caddy does not use %s" % canary_env.caddy.upstreams_file in summary
    assert "the canary was left running: its traffic could not be taken off it" in summary
    assert canary_env.services.pid("canary") is not None, "the canary still gets traffic: it must not be removed"

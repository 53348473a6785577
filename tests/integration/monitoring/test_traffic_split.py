"""traffic_split against a real Caddy 2.6.2 (the harness's Caddy): the split applied through the admin API or
``caddy reload`` and checked with load through Caddy (the stable and canary reference services of the monitoring
stack), idempotence, check mode, diff, bad input, and a failed reload or verification that puts everything back.

Caddy 2.6.2 keeps an upstream listed several times in one ``to`` line and round_robin counts every entry, so N
requests over a listing of N entries reach each entry once: the shares below are exact."""
from __future__ import annotations

import json
import os
import stat
import sys

import pytest

from loadgen import LoadGenerator
from modrun import run_module
from monitoring import Caddy, ServiceLayoutCaddy, free_port, http_call

pytestmark = pytest.mark.integration

# Upstreams that need not answer: the tests without load only look at Caddy's configuration and admin API.
STABLE = "127.0.0.1:%d" % free_port()
CANARY = "127.0.0.1:%d" % free_port()


@pytest.fixture()
def caddy(tmp_path):
    with Caddy(tmp_path / "caddy", upstreams=[STABLE, CANARY]) as daemon:
        yield daemon


def split_args(caddy_daemon, weight, stable=STABLE, canary=CANARY, **extra):
    args = {"weight": weight, "stable_upstreams": [stable], "canary_upstreams": [canary],
            "upstreams_file": str(caddy_daemon.upstreams_file), "caddyfile": str(caddy_daemon.caddyfile),
            "admin_url": caddy_daemon.admin_url}
    args.update(extra)
    return args


def split(args, check_mode=False):
    result = run_module("traffic_split", args, check_mode=check_mode)
    assert "Traceback" not in result.raw
    return result


def to_line(caddy_daemon):
    """The upstreams of the file's ``to`` line, in order (comment lines skipped)."""
    lines = [line.split() for line in caddy_daemon.upstreams_file.read_text().splitlines()]
    return next(words[1:] for words in lines if words[:1] == ["to"])


def listed(caddy_daemon):
    return sorted(entry["address"] for entry in caddy_daemon.upstreams())


def running_config(caddy_daemon):
    status, body = http_call("GET", caddy_daemon.admin_url + "/config/")
    assert status == 200
    return json.loads(body.decode())


def broken_copy(caddy_daemon, tmp_path):
    """The Caddyfile with a directive Caddy does not know inside reverse_proxy: every reload of it fails."""
    path = tmp_path / "Caddyfile.broken"
    path.write_text(caddy_daemon.caddyfile.read_text().replace("lb_policy round_robin", "lb_policy round_robin\n\t\tfrobnicate"))
    return path


def test_weight_10_sends_a_tenth_of_the_requests_to_the_canary(monitoring):
    stable, canary = monitoring.stable_hostport, monitoring.canary_hostport
    result = split(split_args(monitoring.caddy, 10, stable=stable, canary=canary))
    assert result["changed"] is True and not result.get("failed")
    assert result["units"] == {"stable": 9, "canary": 1} and result["canary_share"] == 10.0
    assert result["upstreams"] == [stable] * 9 + [canary]
    assert to_line(monitoring.caddy) == [stable] * 9 + [canary]
    (record,) = result["records"]
    assert (record["criterion"], record["name"], record["status"]) == ("canary.step", "canary.step.split", "pass")
    assert result["reloaded"] is True and result["verified"] is True
    assert result["upstreams_listed"] == sorted([stable, canary])
    # The admin API lists each upstream once, although the stable one is listed nine times.
    assert listed(monitoring.caddy) == sorted([stable, canary])
    load = monitoring.load(requests=200, concurrency=4).run()
    assert load["by_status"] == {200: 200} and not load["errors"]
    assert load["by_upstream"] == {stable: 180, canary: 20}


def test_weight_0_sends_everything_to_stable_and_100_everything_to_the_canary(monitoring):
    stable, canary = monitoring.stable_hostport, monitoring.canary_hostport
    result = split(split_args(monitoring.caddy, 0, stable=stable, canary=canary))
    assert result["records"][0]["status"] == "pass" and result["upstreams"] == [stable]
    assert result["units"] == {"stable": 1, "canary": 0}
    assert listed(monitoring.caddy) == [stable]
    assert monitoring.load(requests=30, concurrency=3).run()["by_upstream"] == {stable: 30}
    full = split(split_args(monitoring.caddy, 100, stable=stable, canary=canary))
    assert full["records"][0]["status"] == "pass" and full["upstreams"] == [canary]
    assert monitoring.load(requests=30, concurrency=3).run()["by_upstream"] == {canary: 30}


def test_a_capped_weight_keeps_its_rounded_share(monitoring):
    stable, canary = monitoring.stable_hostport, monitoring.canary_hostport
    result = split(split_args(monitoring.caddy, 33, stable=stable, canary=canary))
    assert result["units"] == {"stable": 13, "canary": 7} and result["canary_share"] == 35.0
    load = monitoring.load(requests=200, concurrency=4).run()
    assert load["by_upstream"] == {stable: 130, canary: 70}


def test_the_second_run_changes_nothing(caddy):
    args = split_args(caddy, 25)
    first = split(args)
    assert first["changed"] is True and first["upstreams"] == [STABLE, STABLE, STABLE, CANARY]
    before = os.stat(caddy.upstreams_file)
    config = running_config(caddy)
    second = split(args)
    assert second["changed"] is False and second["reloaded"] is False and second["verified"] is True
    assert second["records"][0]["status"] == "pass"
    assert "already up to date, no reload" in second["records"][0]["summary"]
    after = os.stat(caddy.upstreams_file)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert running_config(caddy) == config


def test_the_file_is_managed_replaced_whole_and_keeps_its_mode(caddy):
    os.chmod(caddy.upstreams_file, 0o640)
    result = split(split_args(caddy, 50))
    assert result["changed"] is True
    text = caddy.upstreams_file.read_text()
    assert text.startswith("# Managed by cleanwithsnapshot.release.traffic_split")
    assert text.splitlines()[-1] == "to %s %s" % (STABLE, CANARY)
    assert stat.S_IMODE(os.stat(caddy.upstreams_file).st_mode) == 0o640
    assert to_line(caddy) == [STABLE, CANARY]
    leftovers = [name for name in os.listdir(caddy.upstreams_file.parent) if name.endswith(".tmp")]
    assert leftovers == []


def test_check_mode_plans_and_changes_nothing(caddy):
    before_text = caddy.upstreams_file.read_text()
    config = running_config(caddy)
    result = split(dict(split_args(caddy, 10), _ansible_diff=True), check_mode=True)
    assert result["changed"] is True and not result.get("failed")
    assert result["upstreams"] == [STABLE] * 9 + [CANARY]
    assert result["records"][0]["status"] == "skipped"
    assert "check mode: would write 10 entries" in result["records"][0]["summary"]
    assert result["diff"]["before"] == before_text
    assert result["diff"]["after"].splitlines()[-1] == "to " + " ".join([STABLE] * 9 + [CANARY])
    assert caddy.upstreams_file.read_text() == before_text
    assert running_config(caddy) == config
    assert result["reloaded"] is False
    # Once applied, check mode verifies for real and reports no change.
    split(split_args(caddy, 10))
    again = split(split_args(caddy, 10), check_mode=True)
    assert again["changed"] is False and again["records"][0]["status"] == "pass" and again["verified"] is True


def test_diff_shows_before_and_after(caddy):
    result = split(dict(split_args(caddy, 50), _ansible_diff=True))
    assert result["diff"]["before"] == "to %s %s\n" % (STABLE, CANARY)
    assert result["diff"]["after"] == caddy.upstreams_file.read_text()
    assert result["diff"]["before_header"] == str(caddy.upstreams_file)


@pytest.mark.parametrize("weight", [101, -1])
def test_a_weight_outside_0_to_100_fails_naming_weight(caddy, weight):
    before = caddy.upstreams_file.read_text()
    result = split(split_args(caddy, weight))
    assert result["failed"] is True
    assert result["msg"] == "weight must be between 0 and 100 (the canary's percentage of requests), got %d" % weight
    assert caddy.upstreams_file.read_text() == before


@pytest.mark.parametrize("overrides, words", [
    ({"stable_upstreams": ["http://127.0.0.1:8000"]}, "stable_upstreams[0]: 'http://127.0.0.1:8000' is not host:port"),
    ({"canary_upstreams": []}, "canary_upstreams must list at least one upstream"),
    # An id without the port: parallel test processes must collect the same names.
    pytest.param({"canary_upstreams": [STABLE]}, "canary_upstreams: %s is also a stable upstream" % STABLE,
                 id="canary-upstream-is-stable"),
    ({"max_units": 1}, "max_units: 1 entries cannot list"),
    ({"reload": "sighup"}, "value of reload must be one of"),
    ({"caddyfile": None}, "reload is admin_api but all of the following are missing: caddyfile"),
    ({"caddyfile": "/nonexistent/Caddyfile"}, "caddyfile: /nonexistent/Caddyfile is not a file"),
    ({"upstreams_file": "/nonexistent/dir/upstreams"}, "upstreams_file: the directory /nonexistent/dir does not exist"),
    ({"reload": "command", "reload_command": ["no-such-caddy", "reload"]}, "reload_command[0]: 'no-such-caddy' is not found"),
    ({"admin_url": "127.0.0.1:2019"}, "admin_url: "),
    ({"reload": "command", "reload_command": ["true"], "config_command": ["no-such-docker", "compose"]},
     "config_command[0]: 'no-such-docker' is not found on this host's PATH"),
    ({"weight": "ten"}, "weight"),
])
def test_bad_input_fails_naming_the_option(caddy, overrides, words):
    before = caddy.upstreams_file.read_text()
    args = split_args(caddy, 10)
    args.update(overrides)
    args = {key: value for key, value in args.items() if value is not None}
    result = split(args)
    assert result["failed"] is True and words in result["msg"]
    assert caddy.upstreams_file.read_text() == before


def test_a_failed_admin_reload_restores_the_file_and_fails_with_caddys_error(caddy, tmp_path):
    before = caddy.upstreams_file.read_text()
    config = running_config(caddy)
    result = split(split_args(caddy, 10, caddyfile=str(broken_copy(caddy, tmp_path))))
    assert result["failed"] is True and result["changed"] is False
    assert "unrecognized subdirective frobnicate" in result["msg"]
    assert result["msg"].startswith("canary weight 10 % (1 canary, 9 stable of 10 entries): reload failed: Caddy refused")
    assert result["restored"] is True and result["reloaded"] is False
    assert result["records"][0]["status"] == "error"
    assert caddy.upstreams_file.read_text() == before
    assert running_config(caddy) == config


def test_a_failed_reload_command_restores_the_file(caddy, tmp_path):
    before = caddy.upstreams_file.read_text()
    command = ["caddy", "reload", "--config", str(broken_copy(caddy, tmp_path)), "--adapter", "caddyfile",
               "--address", caddy.admin_address]
    result = split(split_args(caddy, 10, reload="command", reload_command=command))
    assert result["failed"] is True and result["restored"] is True
    assert result["msg"].startswith("canary weight 10 % (1 canary, 9 stable of 10 entries): reload failed: "
                                    "the reload command exited with 1: Error: ")
    assert "unrecognized subdirective frobnicate" in result["msg"]
    assert caddy.upstreams_file.read_text() == before


def test_a_failed_reload_removes_a_file_that_did_not_exist(caddy, tmp_path):
    new_file = caddy.upstreams_file.parent / "new-upstreams.caddy"
    result = split(split_args(caddy, 10, upstreams_file=str(new_file), reload="command", reload_command=["false"]))
    assert result["failed"] is True and result["restored"] is True
    assert "the reload command exited with 1" in result["msg"]
    assert not new_file.exists()


def test_the_default_reload_command_is_caddy_reload(caddy):
    result = split(split_args(caddy, 50, reload="command", verify_upstreams=True))
    assert result["changed"] is True and result["reloaded"] is True and result["verified"] is True
    assert result["records"][0]["status"] == "pass"
    assert "caddy reload --config %s --adapter caddyfile --address %s" % (caddy.caddyfile, caddy.admin_address) \
        in result["records"][0]["summary"]
    zero = split(split_args(caddy, 0, reload="command", verify_upstreams=True))
    assert zero["records"][0]["status"] == "pass" and listed(caddy) == [STABLE]


def test_a_verification_that_fails_puts_the_previous_file_and_configuration_back(caddy, tmp_path):
    split(split_args(caddy, 50))
    before = caddy.upstreams_file.read_text()
    config = running_config(caddy)
    # A Caddyfile that does not import the upstreams file: it loads, but the canary never shows up.
    static = tmp_path / "Caddyfile.static"
    static.write_text(caddy.caddyfile.read_text().replace("import %s" % caddy.upstreams_file, "to %s" % STABLE))
    result = split(split_args(caddy, 10, caddyfile=str(static)))
    assert result["failed"] is True and result["verified"] is False and result["restored"] is True
    assert "verify failed: Caddy's upstreams do not show the split: canary upstream %s is not in Caddy's upstreams" \
        % CANARY in result["msg"]
    assert "Caddy's previous configuration was loaded again" in result["msg"]
    assert caddy.upstreams_file.read_text() == before
    assert running_config(caddy) == config
    assert listed(caddy) == sorted([STABLE, CANARY])


def test_reload_none_only_writes_the_file(caddy):
    config = running_config(caddy)
    result = split(split_args(caddy, 10, reload="none"))
    assert result["changed"] is True and result["reloaded"] is False and result["verified"] is None
    assert "reload=none" in result["records"][0]["summary"]
    assert to_line(caddy) == [STABLE] * 9 + [CANARY]
    assert running_config(caddy) == config


def test_an_unreachable_admin_api_changes_nothing(caddy):
    before = caddy.upstreams_file.read_text()
    result = split(split_args(caddy, 10, admin_url="http://127.0.0.1:%d" % free_port(), timeout=2))
    assert result["failed"] is True and "did not answer" in result["msg"] and "nothing was changed" in result["msg"]
    assert "admin_url must reach Caddy's admin API from this host" in result["msg"]
    assert caddy.upstreams_file.read_text() == before


def test_verification_checks_the_shares_not_only_the_upstreams(caddy, tmp_path):
    # Caddy serving both upstreams 1:1 from a Caddyfile of its own (as when it reads a stale copy of the file): the
    # upstream listing looks right for weight 10, the running configuration's repeat counts do not.
    before = caddy.upstreams_file.read_text()
    stale = tmp_path / "Caddyfile.stale"
    stale.write_text(caddy.caddyfile.read_text().replace("import %s" % caddy.upstreams_file, "to %s %s" % (STABLE, CANARY)))
    result = split(split_args(caddy, 10, caddyfile=str(stale)))
    assert result["failed"] is True and result["restored"] is True
    assert result["upstreams_listed"] == sorted([STABLE, CANARY])
    wanted = ", ".join("%s x%d" % item for item in sorted({STABLE: 9, CANARY: 1}.items()))
    found = ", ".join("%s x1" % address for address in sorted([STABLE, CANARY]))
    assert ("Caddy's running configuration does not hold the split: no reverse_proxy of Caddy's running configuration "
            "lists %s (found: %s)" % (wanted, found)) in result["msg"]
    assert caddy.upstreams_file.read_text() == before


def test_check_mode_plans_a_command_reload_on_a_host_without_the_command(caddy):
    before = caddy.upstreams_file.read_text()
    args = split_args(caddy, 10, reload="command", reload_command=["no-such-docker", "compose", "exec", "-T", "caddy"])
    result = split(args, check_mode=True)
    assert not result.get("failed") and result["changed"] is True and result["records"][0]["status"] == "skipped"
    assert "(but reload_command[0]: 'no-such-docker' is not found on this host's PATH)" in result["records"][0]["summary"]
    assert caddy.upstreams_file.read_text() == before
    assert split(args)["failed"] is True


# ---------------------------------------------------------------- Caddy's live configuration, not the file, decides
def test_a_drifted_caddy_is_repaired_by_the_weight_0_call(caddy):
    # The file already says weight 0, but Caddy's running configuration was changed out of band (the canary in).
    split(split_args(caddy, 0))
    before = caddy.upstreams_file.read_text()
    caddy.load_text(caddy.inline_text([STABLE, CANARY]))
    assert listed(caddy) == sorted([STABLE, CANARY])
    result = split(split_args(caddy, 0))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["reloaded"] is True and result["verified"] is True
    assert result["drift_repaired"] is True and result["records"][0]["evidence"]["drift_repaired"] is True
    summary = result["records"][0]["summary"]
    assert "already up to date but Caddy did not run it" in summary
    assert "canary upstream %s is still in Caddy's upstreams at weight 0" % CANARY in summary
    assert listed(caddy) == [STABLE] and result["upstreams_listed"] == [STABLE]
    assert caddy.upstreams_file.read_text() == before
    # Repaired: the next call has nothing to do.
    again = split(split_args(caddy, 0))
    assert again["changed"] is False and again["drift_repaired"] is False and again["verified"] is True


def test_a_drift_in_the_shares_alone_is_repaired(caddy):
    # Caddy runs both upstreams 1:1 although the file says 10 %: the listing looks right, the repeat counts do not.
    split(split_args(caddy, 10))
    caddy.load_text(caddy.inline_text([STABLE, CANARY]))
    result = split(split_args(caddy, 10))
    assert result["drift_repaired"] is True and result["verified"] is True
    assert [sorted(dials) for dials in caddy.running_dials()] == [sorted([STABLE] * 9 + [CANARY])]


def test_command_reload_verifies_by_default(caddy):
    # A reload command that exits 0 without loading anything: only the read-back through the admin API sees it.
    before = caddy.upstreams_file.read_text()
    config = running_config(caddy)
    result = split(split_args(caddy, 10, reload="command", reload_command=["true"]))
    assert result["failed"] is True and result["verified"] is False and result["restored"] is True
    assert "verify failed: Caddy's running configuration does not hold the split" in result["msg"]
    assert caddy.upstreams_file.read_text() == before
    assert running_config(caddy) == config


def test_command_reload_repairs_a_drift(caddy):
    command = ["caddy", "reload", "--config", str(caddy.caddyfile), "--adapter", "caddyfile",
               "--address", caddy.admin_address]
    split(split_args(caddy, 0, reload="command", reload_command=command))
    caddy.load_text(caddy.inline_text([STABLE, CANARY]))
    result = split(split_args(caddy, 0, reload="command", reload_command=command))
    assert result["drift_repaired"] is True and result["verified"] is True and listed(caddy) == [STABLE]


def test_check_mode_reports_the_reload_a_drift_needs(caddy):
    split(split_args(caddy, 0))
    caddy.load_text(caddy.inline_text([STABLE, CANARY]))
    config = running_config(caddy)
    result = split(split_args(caddy, 0), check_mode=True)
    assert result["changed"] is True and result["records"][0]["status"] == "skipped"
    assert "is up to date but Caddy's upstreams do not show the split" in result["records"][0]["summary"]
    assert "would reload through Caddy's admin API" in result["records"][0]["summary"]
    assert running_config(caddy) == config


def test_a_caddyfile_that_does_not_import_the_snippet_is_named_with_what_to_add(caddy, tmp_path):
    # The service's own Caddyfile.canary: the upstreams inline, no import.
    inline = tmp_path / "Caddyfile.canary"
    inline.write_text(caddy.inline_text([STABLE]))
    result = split(split_args(caddy, 10, caddyfile=str(inline)))
    assert result["failed"] is True and result["records"][0]["status"] == "error"
    assert ("Caddy does not use %s (%s imports no file named %s): add `import %s` (the path as Caddy sees it) "
            "inside the reverse_proxy block" % (caddy.upstreams_file, inline, caddy.upstreams_file.name,
                                                caddy.upstreams_file)) in result["msg"]
    assert "caddyfile_template" in result["msg"]
    assert listed(caddy) == sorted([STABLE, CANARY]), "Caddy's previous configuration is loaded again"


# ---------------------------------------------------------------- the service's own layout: the whole Caddyfile
@pytest.fixture()
def service_caddy(tmp_path):
    with ServiceLayoutCaddy(tmp_path / "caddy", upstreams=[STABLE]) as daemon:
        yield daemon


def template_args(caddy_daemon, weight, **extra):
    args = {"weight": weight, "stable_upstreams": [STABLE], "canary_upstreams": [CANARY],
            "caddyfile_template": str(caddy_daemon.template), "caddyfile": str(caddy_daemon.caddyfile),
            "admin_url": caddy_daemon.admin_url, "reload": "command",
            "reload_command": ["caddy", "reload", "--config", str(caddy_daemon.caddyfile), "--adapter", "caddyfile",
                               "--address", caddy_daemon.admin_address]}
    args.update(extra)
    return args


def test_the_template_layout_writes_the_whole_caddyfile_in_place(service_caddy):
    inode = os.stat(service_caddy.caddyfile).st_ino
    result = split(template_args(service_caddy, 25))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["verified"] is True and result["lb_policy"] == "round_robin"
    assert result["upstreams_file"] == str(service_caddy.caddyfile)
    # Same inode: a container that bind-mounts this one file sees the new content.
    assert os.stat(service_caddy.caddyfile).st_ino == inode
    text = service_caddy.caddyfile.read_text()
    assert text.startswith("# Written by cleanwithsnapshot.release.traffic_split from %s" % service_caddy.template)
    assert "{{CANARY_UPSTREAM_CONFIG}}" not in text
    assert service_caddy.read_upstreams() == [STABLE, STABLE, STABLE, CANARY]
    # Both reverse_proxy blocks of the template (the admin routes and the rest) hold the split.
    assert [sorted(dials) for dials in service_caddy.running_dials()] == [sorted([STABLE] * 3 + [CANARY])] * 2
    again = split(template_args(service_caddy, 25))
    assert again["changed"] is False and again["verified"] is True
    zero = split(template_args(service_caddy, 0))
    assert zero["verified"] is True and listed(service_caddy) == [STABLE]


def test_the_template_layout_repairs_a_drift(service_caddy):
    split(template_args(service_caddy, 0))
    service_caddy.load_text(service_caddy.inline_text([STABLE, CANARY]))
    result = split(template_args(service_caddy, 0))
    assert result["drift_repaired"] is True and result["verified"] is True and listed(service_caddy) == [STABLE]


def test_the_template_layout_splits_real_traffic(monitoring, tmp_path):
    stable, canary = monitoring.stable_hostport, monitoring.canary_hostport
    with ServiceLayoutCaddy(tmp_path / "service-caddy", upstreams=[stable]) as daemon:
        result = split(dict(template_args(daemon, 10), stable_upstreams=[stable], canary_upstreams=[canary]))
        assert result["verified"] is True
        load = LoadGenerator(daemon.url, paths=("/healthz",), requests=100, concurrency=4).run()
    assert load["by_upstream"] == {stable: 90, canary: 10}


def test_random_choose_is_applied_with_a_warning_that_the_share_is_approximate(tmp_path):
    with ServiceLayoutCaddy(tmp_path / "caddy", upstreams=[STABLE], lb_policy="random_choose 2") as daemon:
        result = split(template_args(daemon, 10))
    assert result["verified"] is True and result["lb_policy"] == "random_choose"
    # ansible-core gives warnings as text or, from 2.19, as structured events: look at their text either way.
    warnings = json.dumps(result.get("warnings", []))
    assert "Caddy picks among the upstreams with random_choose: the canary's share is only approximately 10 %" in warnings


@pytest.mark.parametrize("change, words", [
    ("no-placeholder", "caddyfile_template: %s does not contain {{CANARY_UPSTREAM_CONFIG}} (template_placeholder)"),
    ("same-file", "caddyfile_template: %s is also the caddyfile written from it"),
    ("both-layouts", "parameters are mutually exclusive: upstreams_file|caddyfile_template"),
    ("no-caddyfile", "missing parameter(s) required by 'caddyfile_template': caddyfile"),
])
def test_bad_template_input_names_the_option(service_caddy, change, words):
    args = template_args(service_caddy, 10)
    if change == "no-placeholder":
        plain = service_caddy.template.with_name("plain.template")
        plain.write_text(service_caddy.caddyfile.read_text())
        args["caddyfile_template"] = str(plain)
    elif change == "same-file":
        args["caddyfile_template"] = str(service_caddy.caddyfile)
    elif change == "both-layouts":
        args["upstreams_file"] = str(service_caddy.workdir / "upstreams.caddy")
    else:
        del args["caddyfile"]
        del args["reload_command"]
        args["reload"] = "none"  # the reload command's own requirement aside
    before = service_caddy.caddyfile.read_text()
    result = split(args)
    assert result["failed"] is True
    expected = words % args["caddyfile_template"] if "%s" in words else words
    assert expected in result["msg"]
    assert service_caddy.caddyfile.read_text() == before


# ---------------------------------------------------------------- config_command: Caddy read without its admin API
# The service's compose file keeps Caddy's admin API inside the container; config_command reads it there
# (`docker compose exec -T caddy wget -qO- http://127.0.0.1:2019/config/`). Here the command is this Python fetching
# the harness Caddy's /config/, and admin_url points where nothing listens: only the command reads Caddy.
FETCH_CONFIG = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=60).read().decode())"


def config_command(caddy_daemon):
    return [sys.executable, "-c", FETCH_CONFIG, caddy_daemon.admin_url + "/config/"]


def command_args(caddy_daemon, weight, **extra):
    """The command reload and the config command: nothing of the module goes to an admin URL."""
    args = split_args(caddy_daemon, weight, admin_url="http://127.0.0.1:%d" % free_port(), reload="command",
                      reload_command=["caddy", "reload", "--config", str(caddy_daemon.caddyfile), "--adapter",
                                      "caddyfile", "--address", caddy_daemon.admin_address],
                      config_command=config_command(caddy_daemon))
    args.update(extra)
    return args


def test_a_config_command_verifies_the_split_without_the_admin_url(caddy):
    result = split(command_args(caddy, 10))
    assert not result.get("failed"), result.get("msg")
    assert result["reloaded"] is True and result["verified"] is True and result["lb_policy"] == "round_robin"
    assert result["upstreams_listed"] == sorted([STABLE, CANARY])
    evidence = result["records"][0]["evidence"]
    assert evidence["config_command"] == config_command(caddy) and "admin_url" not in evidence
    assert [sorted(dials) for dials in caddy.running_dials()] == [sorted([STABLE] * 9 + [CANARY])]
    again = split(command_args(caddy, 10))
    assert again["changed"] is False and again["reloaded"] is False and again["verified"] is True


def test_a_config_command_drives_the_drift_repair_of_the_weight_0_call(caddy):
    split(command_args(caddy, 0))
    before = caddy.upstreams_file.read_text()
    caddy.load_text(caddy.inline_text([STABLE, CANARY]))
    result = split(command_args(caddy, 0))
    assert not result.get("failed"), result.get("msg")
    assert result["drift_repaired"] is True and result["verified"] is True
    assert "canary upstream %s is still in Caddy's upstreams at weight 0" % CANARY in result["records"][0]["summary"]
    assert listed(caddy) == [STABLE] and result["upstreams_listed"] == [STABLE]
    assert caddy.upstreams_file.read_text() == before


def test_a_config_command_sees_a_reload_that_loaded_nothing_and_the_file_is_put_back(caddy):
    # The reload command exits 0 without loading anything; the configuration read by the command shows it.
    before = caddy.upstreams_file.read_text()
    config = running_config(caddy)
    result = split(command_args(caddy, 10, reload_command=["true"]))
    assert result["failed"] is True and result["verified"] is False and result["restored"] is True
    assert "verify failed: Caddy's running configuration does not hold the split" in result["msg"]
    assert caddy.upstreams_file.read_text() == before
    assert running_config(caddy) == config


def test_the_template_layout_with_a_config_command(service_caddy):
    args = template_args(service_caddy, 25, admin_url="http://127.0.0.1:%d" % free_port(),
                         config_command=config_command(service_caddy))
    result = split(args)
    assert not result.get("failed"), result.get("msg")
    assert result["verified"] is True
    assert [sorted(dials) for dials in service_caddy.running_dials()] == [sorted([STABLE] * 3 + [CANARY])] * 2
    service_caddy.load_text(service_caddy.inline_text([STABLE, CANARY]))
    zero = split(dict(args, weight=0))
    assert zero["verified"] is True and listed(service_caddy) == [STABLE]


@pytest.mark.parametrize("kind", ["exit", "not-json", "timeout", "admin-unpublished"])
def test_a_config_command_that_cannot_read_caddy_is_a_failure_naming_it(caddy, kind):
    before = caddy.upstreams_file.read_text()
    config = running_config(caddy)
    extra = {}
    if kind == "exit":
        code = "import sys; sys.stderr.write('service \"caddy\" is not running\\n'); sys.exit(1)"
        words = 'config_command exited with 1: service "caddy" is not running'
    elif kind == "not-json":
        code = "print('<html>Caddy admin</html>')"
        words = "config_command printed 24 bytes that are not JSON"
    elif kind == "timeout":
        code = "import time; time.sleep(3600)"
        words = "config_command did not finish within 1 s (timeout) and was stopped"
        extra["timeout"] = 1
    else:
        # The admin API the command fetches does not answer where the command runs (busybox wget says so and exits 1).
        code = ("import sys, urllib.request\ntry:\n    urllib.request.urlopen(sys.argv[1], timeout=60)\n"
                "except OSError as exc:\n    sys.exit(\"wget: can't connect to remote host: %s\" % exc)")
        words = "config_command exited with 1: wget: can't connect to remote host: "
    command = [sys.executable, "-c", code, "http://127.0.0.1:%d/config/" % free_port()]
    result = split(command_args(caddy, 10, config_command=command, **extra))
    assert result["failed"] is True and result["changed"] is False and result["records"][0]["status"] == "error"
    assert result["msg"].startswith("canary weight 10 % (1 canary, 9 stable of 10 entries): reading Caddy's running "
                                    "configuration failed: ")
    assert words in result["msg"]
    assert "nothing was changed (config_command must print Caddy's running configuration" in result["msg"]
    assert caddy.upstreams_file.read_text() == before
    assert running_config(caddy) == config


def test_check_mode_reads_through_the_config_command(caddy):
    split(command_args(caddy, 0))
    caddy.load_text(caddy.inline_text([STABLE, CANARY]))
    config = running_config(caddy)
    result = split(command_args(caddy, 0), check_mode=True)
    assert result["changed"] is True and result["records"][0]["status"] == "skipped"
    assert "is up to date but Caddy's upstreams do not show the split" in result["records"][0]["summary"]
    assert running_config(caddy) == config

"""traffic_split's pure parts: weights to repeated upstream entries (GCD, cap, rounding), the file, the checks."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import caddy_split as cs

STABLE = "api:8000"
CANARY = "api-canary:8000"


@pytest.mark.parametrize("weight, stable, canary", [
    (0, 1, 0),
    (100, 0, 1),
    (10, 9, 1),     # GCD 10
    (25, 3, 1),
    (50, 1, 1),
    (75, 1, 3),
    (5, 19, 1),     # exactly 20 entries
    (95, 1, 19),
    (15, 17, 3),
    (45, 11, 9),
    (33, 13, 7),    # 100 entries capped: 6.6 rounds to 7 canary entries
    (1, 19, 1),     # 0.2 rounds to 0, kept at 1: a weight above 0 keeps a canary entry
    (4, 19, 1),
    (99, 1, 19),    # 19.8 rounds to 20, one stable entry kept: a weight below 100 keeps a stable entry
    (96, 1, 19),
    (48, 1, 1),     # 12:13 capped to 10:10, reduced again
    (37, 13, 7),    # 7.4 -> 7
])
def test_units_of_one_stable_and_one_canary(weight, stable, canary):
    assert cs.split_units(weight, 1, 1, 20) == (stable, canary)


@pytest.mark.parametrize("weight", range(0, 101))
def test_every_weight_fits_and_keeps_both_sides_it_needs(weight):
    stable, canary = cs.split_units(weight, 1, 1, 20)
    assert 1 <= stable + canary <= 20
    assert (canary >= 1) == (weight > 0)
    assert (stable >= 1) == (weight < 100)
    # Within half an entry (2.5 %) of the asked share, but where one entry of a side must be kept.
    error = abs(100.0 * canary / (stable + canary) - weight)
    assert error <= 2.5 + 1e-9 or (canary == 1 and weight < 5) or (stable == 1 and weight > 95)


@pytest.mark.parametrize("max_units, weight, stable, canary", [
    (10, 10, 9, 1),
    (10, 33, 7, 3),     # 3.3 -> 3
    (10, 35, 3, 2),     # 7:13 = 20 entries > 10 -> 3.5 rounds to 4:6 -> 2:3
    (100, 33, 67, 33),
    (2, 1, 1, 1),
    (1, 0, 1, 0),
    (1, 100, 0, 1),
])
def test_the_cap_follows_max_units(max_units, weight, stable, canary):
    assert cs.split_units(weight, 1, 1, max_units) == (stable, canary)


def test_several_upstreams_per_side_share_their_side_evenly():
    # 2 canary, 3 stable, weight 10: per upstream 5 % and 30 % -> 1 and 6 repeats (2 + 18 = 20 entries).
    assert cs.split_units(10, 3, 2, 20) == (6, 1)
    plan = cs.SplitPlan(10, ["s1:80", "s2:80", "s3:80"], ["c1:80", "c2:80"])
    counts = Counter(plan.entries)
    assert counts == {"s1:80": 6, "s2:80": 6, "s3:80": 6, "c1:80": 1, "c2:80": 1}
    assert plan.units == {"stable": 18, "canary": 2} and plan.share == 10.0


def test_too_few_units_for_the_upstreams_is_an_error_naming_max_units():
    with pytest.raises(cs.SplitInputError, match=r"^max_units: 2 entries cannot list 2 stable and 1 canary"):
        cs.split_units(10, 2, 1, 2)
    with pytest.raises(cs.SplitInputError, match=r"^max_units: 1 entries"):
        cs.split_units(50, 1, 1, 1)
    with pytest.raises(cs.SplitInputError, match=r"^max_units must be 1 or more"):
        cs.split_units(50, 1, 1, 0)


@pytest.mark.parametrize("weight", [-1, 101, 1000])
def test_a_weight_outside_0_to_100_names_weight(weight):
    with pytest.raises(cs.SplitInputError, match=r"^weight must be between 0 and 100.*got %d" % weight):
        cs.SplitPlan(weight, [STABLE], [CANARY])


def test_interleave_spreads_the_canary_entries():
    out = cs.interleave(["c"] * 3, ["s"] * 17)
    assert Counter(out) == {"c": 3, "s": 17}
    positions = [i for i, entry in enumerate(out) if entry == "c"]
    assert all(later - earlier >= 6 for earlier, later in zip(positions, positions[1:]))
    assert cs.interleave([], ["s"]) == ["s"] and cs.interleave(["c"], []) == ["c"]


def test_the_file_is_a_managed_comment_and_one_to_line():
    plan = cs.SplitPlan(10, [STABLE], [CANARY])
    lines = plan.content.splitlines()
    assert lines[0] == cs.MANAGED_BY
    assert lines[1] == "# canary weight 10 %: 1 of 10 entries on the canary (10 % of requests)"
    assert lines[2] == "to " + " ".join([STABLE] * 9 + [CANARY])
    assert plan.content.endswith("\n") and len(lines) == 3
    assert cs.SplitPlan(10, [STABLE], [CANARY]).content == plan.content  # deterministic
    assert cs.SplitPlan(0, [STABLE], [CANARY]).entries == [STABLE]
    assert cs.SplitPlan(100, [STABLE], [CANARY]).entries == [CANARY]
    assert "(35 % of requests)" in cs.SplitPlan(33, [STABLE], [CANARY]).content


@pytest.mark.parametrize("values, words", [
    ([], "stable_upstreams must list at least one upstream"),
    (["api"], "stable_upstreams[0]: 'api' is not host:port"),
    (["api:8000", "http://api:8000"], "stable_upstreams[1]: 'http://api:8000' is not host:port"),
    (["api:0"], "stable_upstreams[0]"),
    (["api:65536"], "stable_upstreams[0]"),
    (["a b:80"], "stable_upstreams[0]"),
    (["api:80", "API:80"], "stable_upstreams[1]: api:80 is listed twice"),
])
def test_bad_upstreams_name_the_item(values, words):
    with pytest.raises(cs.SplitInputError) as caught:
        cs.check_upstreams(values, "stable_upstreams")
    assert words in str(caught.value)


def test_good_upstreams_are_normalised():
    assert cs.check_upstreams(["API:08000", "10.0.0.5:80", "[::1]:8080", "a_b.local:1"], "x") == [
        "api:8000", "10.0.0.5:80", "[::1]:8080", "a_b.local:1"]


def test_an_upstream_on_both_sides_is_refused():
    with pytest.raises(cs.SplitInputError, match=r"^canary_upstreams: api:8000 is also a stable upstream"):
        cs.SplitPlan(10, [STABLE], [STABLE])


@pytest.mark.parametrize("weight, listed, problems", [
    (10, [STABLE, CANARY], []),
    (10, [STABLE.upper(), CANARY], []),
    (10, [STABLE], ["canary upstream api-canary:8000 is not in Caddy's upstreams"]),
    (0, [STABLE], []),
    (0, [STABLE, CANARY], ["canary upstream api-canary:8000 is still in Caddy's upstreams at weight 0"]),
    (100, [CANARY], []),
    (100, [STABLE, CANARY], ["stable upstream api:8000 is still in Caddy's upstreams at weight 100"]),
    (50, [], ["canary upstream api-canary:8000 is not in Caddy's upstreams",
              "stable upstream api:8000 is not in Caddy's upstreams"]),
])
def test_listing_problems(weight, listed, problems):
    assert cs.listing_problems(listed, cs.SplitPlan(weight, [STABLE], [CANARY])) == problems


def test_the_command_error_is_caddys_error_line():
    err = ('{"level":"info","msg":"using provided configuration"}\n'
           "Error: adapting config using caddyfile: /etc/caddy/Caddyfile:7 - unrecognized subdirective impor\n")
    assert cs.command_error_text(1, "", err) == (
        "the reload command exited with 1: Error: adapting config using caddyfile: "
        "/etc/caddy/Caddyfile:7 - unrecognized subdirective impor")
    assert cs.command_error_text(2, "service caddy is not running\n", "") == (
        "the reload command exited with 2: service caddy is not running")
    assert cs.command_error_text(1, "", "") == "the reload command exited with 1: (no output)"


def test_admin_address_is_the_host_and_port():
    assert cs.admin_address("http://127.0.0.1:2019") == "127.0.0.1:2019"
    assert cs.admin_address("http://localhost:2019/") == "localhost:2019"
    with pytest.raises(cs.SplitInputError, match="^admin_url: "):
        cs.admin_address("localhost:2019")


def proxy_config(*dial_lists):
    """A Caddy JSON configuration with one reverse_proxy handler per dial list, nested as Caddy nests them."""
    routes = [{"handle": [{"handler": "subroute", "routes": [{"handle": [
        {"handler": "reverse_proxy", "upstreams": [{"dial": dial} for dial in dials]}]}]}]} for dials in dial_lists]
    return {"apps": {"http": {"servers": {"srv0": {"listen": [":80"], "routes": routes}}}}}


def test_the_running_configuration_must_hold_the_shares():
    plan = cs.SplitPlan(10, [STABLE], [CANARY])
    assert cs.config_problems(proxy_config([STABLE] * 9 + [CANARY]), plan) == []
    # Order, other upstreams of the handler and other handlers do not matter; the counts do.
    assert cs.config_problems(proxy_config(["other:1"], [CANARY] + [STABLE] * 9 + ["extra:2"]), plan) == []
    assert cs.config_problems(proxy_config([STABLE, CANARY]), plan) == [
        "no reverse_proxy of Caddy's running configuration lists api-canary:8000 x1, api:8000 x9 "
        "(found: api-canary:8000 x1, api:8000 x1)"]
    assert cs.config_problems(proxy_config(["other:1"]), plan) == [
        "no reverse_proxy of Caddy's running configuration lists api-canary:8000 x1, api:8000 x9 "
        "(found: none with these upstreams)"]
    assert cs.config_problems(None, plan)


def test_live_problems_reads_the_listing_then_the_configuration():
    plan = cs.SplitPlan(0, [STABLE], [CANARY])
    assert cs.live_problems([STABLE], proxy_config([STABLE]), plan) is None
    assert cs.live_problems([STABLE, CANARY], proxy_config([STABLE]), plan) == (
        "Caddy's upstreams do not show the split: canary upstream api-canary:8000 is still in Caddy's upstreams at "
        "weight 0 (listed: api-canary:8000, api:8000)")
    assert cs.live_problems([STABLE], proxy_config([STABLE, STABLE, "other:1"], [STABLE, STABLE]), plan) == (
        "Caddy's running configuration does not hold the split: no reverse_proxy of Caddy's running configuration "
        "lists api:8000 x1 (found: api:8000 x2; api:8000 x2)")


def test_the_policy_of_the_matching_handler_is_named():
    plan = cs.SplitPlan(50, [STABLE], [CANARY])
    config = proxy_config([STABLE, CANARY], ["other:1"])
    handler = cs.matching_handlers(config, plan)
    assert len(handler) == 1 and cs.selection_policies(handler) == ["random"]  # Caddy's default
    handler[0]["load_balancing"] = {"selection_policy": {"policy": "random_choose", "choose": 2}}
    assert cs.selection_policies(cs.matching_handlers(config, plan)) == ["random_choose"]


def test_the_template_takes_the_upstreams_inline_at_every_placeholder():
    plan = cs.SplitPlan(25, [STABLE], [CANARY])
    template = "a {\n\treverse_proxy {{CANARY_UPSTREAM_CONFIG}} {\n\t}\n}\nb {\n\treverse_proxy {{CANARY_UPSTREAM_CONFIG}}\n}\n"
    text = plan.rendered(template, cs.DEFAULT_PLACEHOLDER, "/srv/Caddyfile.template")
    lines = text.splitlines()
    assert lines[0] == ("# Written by cleanwithsnapshot.release.traffic_split from /srv/Caddyfile.template: "
                        "canary weight 25 % (25 % of requests)")
    assert lines[2] == "\treverse_proxy api:8000 api:8000 api:8000 api-canary:8000 {"
    assert lines[6] == "\treverse_proxy api:8000 api:8000 api:8000 api-canary:8000"
    assert "{{" not in text


@pytest.mark.parametrize("caddyfile, imports", [
    ("x {\n\treverse_proxy {\n\t\timport /etc/caddy/canary-upstreams.caddy\n\t}\n}\n", True),
    ("x {\n\treverse_proxy {\n\t\timport canary-upstreams.caddy\n\t}\n}\n", True),
    ("x {\n\treverse_proxy api:8000 {\n\t\tlb_policy random_choose 2\n\t}\n}\n", False),
    ("x {\n\t# import canary-upstreams.caddy\n\treverse_proxy api:8000\n}\n", False),
    ("x {\n\timport other-canary-upstreams.caddy.bak\n}\n", False),
])
def test_whether_the_caddyfile_imports_the_snippet(tmp_path, caddyfile, imports):
    path = tmp_path / "Caddyfile"
    path.write_text(caddyfile)
    assert cs.caddyfile_imports(str(path), "/opt/app/config/caddy/canary-upstreams.caddy") is imports
    assert cs.caddyfile_imports(str(tmp_path / "missing"), "canary-upstreams.caddy") is None


# ---------------------------------------------------------------- config_command: Caddy read by a command
def test_the_listing_is_read_from_the_configuration_itself():
    config = proxy_config([STABLE.upper()] * 9 + [CANARY], ["other:1"], [])
    assert cs.config_dials(config) == sorted([STABLE, CANARY, "other:1"])
    assert cs.config_dials(None) == [] and cs.config_dials({"apps": {}}) == []


def test_a_configuration_object_or_null_is_accepted_as_printed():
    config = proxy_config([STABLE])
    body, problem = cs.parse_config_output(json.dumps(config) + "\n")
    assert problem is None and json.loads(body.decode()) == config
    # A Caddy with no configuration answers null; nothing routes, and the comparison says so.
    assert cs.parse_config_output("null") == (b"null", None)


@pytest.mark.parametrize("out, words", [
    ("", "config_command printed nothing"),
    ("   \n", "config_command printed nothing"),
    ("wget: can't connect to remote host: Connection refused",
     "config_command printed 54 bytes that are not JSON (Expecting value: line 1 column 1 (char 0))"),
    ('{"apps": {"http": ', "config_command printed 17 bytes that are not JSON"),
    ("[1, 2]", "config_command printed JSON list, not a configuration object"),
    ('"admin"', "config_command printed JSON str, not a configuration object"),
])
def test_an_output_that_is_no_configuration_names_config_command(out, words):
    body, problem = cs.parse_config_output(out)
    assert body is None and problem.startswith(words)
    assert "as GET /config/ answers it" in problem


def test_the_output_is_never_quoted_in_the_error():
    # A running configuration can hold credentials (basic auth, header secrets): a broken one is not shown.
    secret = "s3cr3t-proxy-auth-value"
    body, problem = cs.parse_config_output('{"apps": {"http": {"X-Proxy-Auth": "%s"' % secret)
    assert body is None and secret not in problem


def command(*code):
    return [sys.executable, "-c", "\n".join(code)]


def run_command(argv, check_rc=False, handle_exceptions=True, expand_user_and_vars=True):
    """What AnsibleModule.run_command answers for an argument list: (rc, stdout, stderr)."""
    assert not check_rc and not handle_exceptions and not expand_user_and_vars
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    return done.returncode, done.stdout, done.stderr


def run_config(argv, timeout):
    return cs.run_config_command(run_command, argv, timeout, shutil.which("timeout"))


def test_a_config_command_that_prints_the_configuration_is_read():
    config = proxy_config([STABLE, CANARY])
    body, problem = run_config(command("import sys", "sys.stdout.write(sys.argv[1])") + [json.dumps(config)],
                               timeout=60)
    assert problem is None and json.loads(body.decode()) == config


def test_a_failing_config_command_names_config_command_with_its_error_and_no_password():
    body, problem = run_config(command(
        "import sys",
        "sys.stdout.write('{\"secret\": \"out-of-band\"}')",
        "sys.stderr.write('wget: server returned error: HTTP/1.1 403 Forbidden http://ops:hunter2@127.0.0.1:2019/\\n')",
        "sys.exit(3)"), timeout=60)
    assert body is None
    assert problem.startswith("config_command exited with 3: wget: server returned error: HTTP/1.1 403 Forbidden")
    assert "hunter2" not in problem and "out-of-band" not in problem


def test_a_config_command_that_outlasts_the_timeout_is_stopped_and_named():
    # The command would sleep for an hour: the timeout, not the command, ends the wait.
    body, problem = run_config(command("import time", "time.sleep(3600)"), timeout=1)
    assert body is None
    assert problem == ("config_command did not finish within 1 s (timeout) and was stopped; Caddy's running "
                       "configuration could not be read")


def test_a_config_command_is_not_run_without_a_way_to_bound_it():
    body, problem = cs.run_config_command(run_command, command("print('{}')"), 5, None)
    assert body is None and problem.startswith("config_command cannot be bounded in time: the timeout program")


def test_a_config_command_that_cannot_be_run_is_named(tmp_path):
    body, problem = run_config([str(tmp_path / "no-such-wget"), "-qO-"], timeout=5)
    assert body is None and problem.startswith("config_command: %s cannot be run: " % (tmp_path / "no-such-wget"))


def options_params(tmp_path, **extra):
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text("x {\n}\n")
    params = {"reload": "command", "admin_url": "http://127.0.0.1:2019", "caddyfile": str(caddyfile),
              "caddyfile_template": None, "template_placeholder": cs.DEFAULT_PLACEHOLDER,
              "upstreams_file": str(tmp_path / "upstreams.caddy"), "timeout": 10.0, "verify_upstreams": None,
              "reload_command": ["caddy", "reload"], "config_command": None}
    params.update(extra)
    return params


def on_path(name):
    return "/usr/bin/%s" % name if name in ("caddy", "docker") else None


def test_with_a_config_command_the_admin_url_is_not_needed(tmp_path):
    options = cs.SplitOptions(options_params(tmp_path, admin_url="not a url", config_command=["docker", "compose"]),
                              on_path)
    assert options.verify is True and options.config_command == ["docker", "compose"]
    assert not options.uses_admin_url and not options.can_load_saved
    # Without one, the admin URL is where Caddy is read, so a bad one is refused naming it.
    with pytest.raises(cs.SplitInputError, match="^admin_url: "):
        cs.SplitOptions(options_params(tmp_path, admin_url="not a url"), on_path)


def test_with_the_admin_api_reload_the_saved_configuration_is_still_posted_back(tmp_path):
    options = cs.SplitOptions(options_params(tmp_path, reload="admin_api", config_command=["docker"]), on_path)
    assert options.uses_admin_url and options.can_load_saved
    assert cs.SplitOptions(options_params(tmp_path, config_command=[]), on_path).config_command == []


def test_a_config_command_not_on_the_path_is_named(tmp_path):
    params = options_params(tmp_path, config_command=["no-such-docker", "compose"])
    with pytest.raises(cs.SplitInputError, match=r"^config_command\[0\]: 'no-such-docker' is not found on this host's PATH"):
        cs.SplitOptions(params, on_path)
    # Check mode only plans: the missing command is mentioned.
    planned = cs.SplitOptions(params, on_path, check_mode=True)
    assert planned.missing_command == "config_command[0]: 'no-such-docker' is not found on this host's PATH"

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: traffic_split
short_description: Set the canary's share of traffic in Caddy (repeated upstreams) and make Caddy run it
version_added: 0.1.0
description:
  - Sets the canary's share in one of two layouts, reloads Caddy and checks, through its admin API, that Caddy runs
    the split. Used by the canary role for each traffic stage and for the rollback (criterion C(canary.step)).
  - The snippet layout (O(upstreams_file)) - writes a Caddyfile snippet, a comment saying it is managed, then one
    C(to host:port host:port ...) line, that the main Caddyfile imports inside its C(reverse_proxy) block
    (C(reverse_proxy { import <upstreams_file>; lb_policy round_robin })). When, after the reload, no
    C(reverse_proxy) of Caddy's running configuration lists the upstreams as the snippet does, the task fails
    saying what to add to the Caddyfile (the C(import) line) - so a Caddyfile that does not import the snippet is
    found at the first stage, not by a stage that sees no canary traffic.
  - The template layout (O(caddyfile_template)) - writes the whole O(caddyfile) from a template, every
    O(template_placeholder) replaced by the upstream list, as the real service's C(ops/generate_canary_caddyfile.sh)
    writes C(Caddyfile.canary) from C(config/canary/Caddyfile.template) (the upstreams inline after
    C(reverse_proxy), whatever C(lb_policy) the template sets). The file is rewritten in place (same inode), as that
    generator does - the service's compose file bind-mounts that single file into the Caddy container, where a file
    replaced by a rename would never be seen.
  - Every call first compares Caddy's live configuration (C(GET /config/) and C(GET /reverse_proxy/upstreams)) with
    the wanted split, and reloads Caddy from the file when they differ even if the file needs no change - a Caddy
    changed out of band, or one that kept an older file, is brought back to the split. A rollback to weight 0 thus
    converges whatever happened to Caddy in between.
  - The split is made the way the real service's canary generator makes it - Caddy 2.6 has no weighted load
    balancing policy, so each upstream is listed as often as its weight asks and C(round_robin) goes through the
    list. The canary's O(weight) and the stable side's C(100 - weight) (per upstream, when a side has several) are
    reduced by their greatest common divisor - weight 10 gives one canary and nine stable entries - and more than
    O(max_units) entries are scaled down to O(max_units), the canary's count rounded half up, keeping at least one
    canary entry for a weight above 0 and one stable entry for a weight below 100 (weight 33 gives 7 canary and
    13 stable entries, 35 % of requests). The canary entries are spread evenly among the stable ones.
  - Caddy 2.6.2 accepts an upstream listed several times in one C(to) line and C(round_robin) counts every
    entry (1 canary entry among 10 gets every tenth request); its admin endpoint C(GET /reverse_proxy/upstreams)
    lists each address once, so it shows which upstreams are in use, not their shares - O(verify_upstreams) reads
    the shares from the running configuration.
  - The file is written only when its content changes, and Caddy reloaded only when the file changed or Caddy's
    running configuration does not hold the split (a second run with the same weight against an unchanged Caddy
    reports C(changed=false) and does not reload). A snippet is written atomically - a temporary file in the same
    directory renamed over it, keeping its mode and owner.
  - A reload that fails puts the previous content back (or removes a file that did not exist) and fails the
    task with Caddy's error text; nothing is left half-applied. A verification that fails after a reload puts the
    previous file back and loads Caddy's previous configuration again (the running configuration read from
    C(GET /config/) before the change is posted back; without verification, O(reload=command) runs the command once
    more).
  - Caddy's running configuration is read through O(admin_url), or, with O(config_command), by a command that prints
    it - for a Caddy in a container whose admin API this host cannot reach (the real service's compose file keeps
    port 2019 inside the container). The upstream listing is then taken from that configuration (every C(dial) of its
    C(reverse_proxy) handlers). The command's output is never shown - a running configuration can hold credentials.
  - When Caddy's running configuration cannot be read before the change (the admin API does not answer, or
    O(config_command) fails, outlasts O(timeout) or prints no JSON), nothing is changed and the task fails naming
    the option (fail closed - a split that cannot be checked is not applied).
  - Returns one record, criterion C(canary.step), name C(canary.step.split) - C(pass) when applied (and verified,
    unless O(verify_upstreams=false)), C(error) when the reload or the verification failed (the task fails too),
    C(skipped) in check mode when a change would be made.
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Plans only - reports the upstream list it would write and C(changed), writes nothing and reloads nothing.
        When the file is already up to date it still compares Caddy's live upstreams with it (a read), and reports
        the reload it would make when they differ.
  diff_mode:
    support: full
    details: The file's content before and after.
  platform:
    platforms: posix
options:
  weight:
    description:
      - The canary's share of requests in percent, 0 to 100. V(0) sends everything to the stable upstreams (the
        canary is not listed), V(100) everything to the canary.
    type: int
    required: true
  stable_upstreams:
    description:
      - The stable release's upstreams, C(host:port) each (for example V(api:8000)); at least one.
    type: list
    elements: str
    required: true
  canary_upstreams:
    description:
      - The canary's upstreams, C(host:port) each (for example V(api-canary:8000)); at least one, none of them
        also a stable upstream.
    type: list
    elements: str
    required: true
  max_units:
    description:
      - The most entries of the C(to) line, as in the real service's generator (20 - a 5 % resolution). Must hold
        at least one entry of each upstream the weight uses.
    type: int
    default: 20
  upstreams_file:
    description:
      - The snippet layout - the Caddyfile snippet to write, on the host the module runs on. Its directory must
        exist.
      - When Caddy runs in a container, mount the file's directory, not the file itself - the file is replaced by a
        rename, and a container that bind-mounts a single file keeps seeing the old one (with O(verify_upstreams)
        the running configuration then does not hold the new split, and the change is undone).
      - Exactly one of O(upstreams_file) and O(caddyfile_template) is required.
    type: path
  caddyfile_template:
    description:
      - The template layout - a whole Caddyfile with O(template_placeholder) where the upstream list goes (the real
        service's C(config/canary/Caddyfile.template)). O(caddyfile) is written from it; it must be another file.
      - Requires O(caddyfile).
    type: path
  template_placeholder:
    description:
      - The text of O(caddyfile_template) that each time is replaced by the upstream list, space separated. The
        default is the service generator's.
    type: str
    default: "{{CANARY_UPSTREAM_CONFIG}}"
  reload:
    description:
      - How Caddy learns of a changed file.
      - C(admin_api) - POST the main O(caddyfile) (read on this host) to O(admin_url)C(/load) with
        C(Content-Type text/caddyfile). Caddy adapts it itself and reads its C(import) paths on its own file
        system - in a container those are the container's paths.
      - C(command) - run O(reload_command) (an argument list, never a shell string), for example
        C([docker, compose, exec, -T, caddy, caddy, reload, --config, /etc/caddy/Caddyfile]) where Caddy runs in a
        container. Without O(reload_command), C(caddy reload --config <caddyfile> --adapter caddyfile --address
        <admin_url's host:port>).
      - C(none) - only write the file (Caddy reads it at its next reload or start).
    type: str
    choices: [admin_api, command, none]
    default: admin_api
  admin_url:
    description:
      - Caddy's admin API as this host reaches it, for O(reload=admin_api) and, without O(config_command), for
        O(verify_upstreams) - whatever the reload method, this is where the split is read back. A Caddy in a
        container must then publish it (on the host's loopback); O(config_command) reads it inside the container
        instead.
    type: str
    default: http://127.0.0.1:2019
  config_command:
    description:
      - A command, as a list of arguments (never a shell string), whose standard output is Caddy's running
        configuration as JSON, as C(GET /config/) answers it - used instead of O(admin_url) to read Caddy before and
        after every change (the drift check and O(verify_upstreams)). For a Caddy in a container that does not
        publish its admin API, for example C([docker, compose, --project-name, cleanwithsnapshot, exec, -T, caddy,
        wget, -qO-, http://127.0.0.1:2019/config/]) (the C(caddy) image has busybox C(wget)).
      - Its first element must be an absolute path or found on the PATH. It must finish within O(timeout) seconds
        (then it is stopped). A non-zero exit status (its standard error shown), a timeout, or an output that is not
        a JSON object fails the task naming this option; its output is never shown.
      - Without the admin API, a verification that fails after a reload cannot post the saved configuration back -
        the previous file is restored and Caddy reloaded from it (with O(reload=admin_api) the saved configuration is
        still posted to O(admin_url)).
    type: list
    elements: str
  caddyfile:
    description:
      - The path of the main Caddyfile. Required with O(reload=admin_api) (its content is posted), with
        O(reload=command) when O(reload_command) is not given, and with O(caddyfile_template) (it is written from
        the template). In the snippet layout, when it can be read here, the message of a snippet Caddy does not use
        says whether it imports the snippet.
    type: path
  reload_command:
    description:
      - The reload command for O(reload=command), as a list of arguments. Its first element must be an absolute
        path or found on the PATH (in check mode a missing one is only mentioned in the summary). A non-zero exit
        status is a failed reload, its C(Error:) lines (else the end of its output) the error text.
    type: list
    elements: str
  verify_upstreams:
    description:
      - Before anything is changed and again after a reload, C(GET) O(admin_url)C(/reverse_proxy/upstreams) (with
        O(config_command), the upstreams of the configuration it prints) and check that the canary upstreams are
        listed when O(weight) is above 0 (and not when it is 0), and the stable ones when
        it is below 100 (and not at 100). A live Caddy that does not hold the split is reloaded even when the file is
        up to date.
      - That listing names each upstream once, however often it is repeated, so the shares are checked in the
        running configuration too (C(GET /config/)) - a C(reverse_proxy) handler must list the upstreams of this
        module as often as the file does (other upstreams of that handler, if any, aside).
      - Defaults to true for O(reload=admin_api) and O(reload=command) (the exit status of a command does not say
        which configuration Caddy runs), false for O(reload=none) (nothing reloads Caddy; with true, a Caddy that
        does not run the split fails the task).
      - The listing holds the upstreams of every C(reverse_proxy) of the running configuration - an upstream that
        another site also proxies to stays listed, and must not be expected to disappear.
    type: bool
  timeout:
    description: Seconds to wait for each answer of Caddy's admin API, and for O(config_command) to finish.
    type: float
    default: 10
"""

EXAMPLES = r"""
- name: Send 10 % of the requests to the canary
  cleanwithsnapshot.release.traffic_split:
    weight: 10
    stable_upstreams: [api:8000]
    canary_upstreams: [api-canary:8000]
    upstreams_file: /opt/cleaning/config/caddy/upstreams.caddy
    reload: command
    reload_command: [docker, compose, --project-directory, /opt/cleaning, exec, -T, caddy,
                     caddy, reload, --config, /etc/caddy/Caddyfile]
  register: split

- name: The service's own layout - Caddyfile.canary written whole from its template, reloaded in the container
  cleanwithsnapshot.release.traffic_split:
    weight: 25
    stable_upstreams: [api:8000]
    canary_upstreams: [api-canary:8000]
    caddyfile_template: /opt/cleaning/config/canary/Caddyfile.template
    caddyfile: /opt/cleaning/Caddyfile.canary
    reload: command
    reload_command: [docker, compose, --project-directory, /opt/cleaning, exec, -T, caddy,
                     caddy, reload, --config, /etc/caddy/Caddyfile]
    # The admin API stays inside the container: read the running configuration there.
    config_command: [docker, compose, --project-directory, /opt/cleaning, exec, -T, caddy,
                     wget, -qO-, http://127.0.0.1:2019/config/]

- name: The same, the admin API published on the host's loopback
  cleanwithsnapshot.release.traffic_split:
    weight: 25
    stable_upstreams: [api:8000]
    canary_upstreams: [api-canary:8000]
    caddyfile_template: /opt/cleaning/config/canary/Caddyfile.template
    caddyfile: /opt/cleaning/Caddyfile.canary
    reload: command
    reload_command: [docker, compose, --project-directory, /opt/cleaning, exec, -T, caddy,
                     caddy, reload, --config, /etc/caddy/Caddyfile]
    admin_url: http://127.0.0.1:2019

- name: Caddy on the host, reloaded and verified through its admin API
  cleanwithsnapshot.release.traffic_split:
    weight: "{{ canary_stage }}"
    stable_upstreams: [127.0.0.1:8000]
    canary_upstreams: [127.0.0.1:8001]
    upstreams_file: /etc/caddy/upstreams.caddy
    caddyfile: /etc/caddy/Caddyfile
"""

RETURN = r"""
weight:
  description: The canary weight asked for.
  returned: always
  type: int
  sample: 10
units:
  description: How many entries of the C(to) line go to each side.
  returned: always
  type: dict
  sample: {stable: 9, canary: 1}
canary_share:
  description: The canary's share of requests the list gives, in percent (differs from O(weight) when capped).
  returned: always
  type: float
  sample: 10.0
upstreams:
  description: The entries of the C(to) line, in order (written, or in check mode to be written).
  returned: always
  type: list
  elements: str
  sample: [api:8000, api:8000, api:8000, api:8000, api:8000, api:8000, api:8000, api:8000, api:8000, api-canary:8000]
upstreams_file:
  description: The file written - O(upstreams_file), or O(caddyfile) in the template layout.
  returned: always
  type: str
reload:
  description: The reload method used.
  returned: always
  type: str
reloaded:
  description: Whether Caddy was reloaded with the new file (and kept it).
  returned: always
  type: bool
verified:
  description: True when Caddy's upstream listing showed the split, false when it did not, null when not checked.
  returned: always
  type: bool
restored:
  description: Whether a failed step put the previous file content back.
  returned: always
  type: bool
upstreams_listed:
  description: The addresses C(GET /reverse_proxy/upstreams) listed at the last read (after the reload, if any); with
    O(config_command), the upstreams of the configuration it printed.
  returned: when verified
  type: list
  elements: str
drift_repaired:
  description: True when the file was already up to date but Caddy's running configuration was not, and a reload
    brought it back to the split.
  returned: always
  type: bool
lb_policy:
  description: The load balancing policy of the C(reverse_proxy) that holds the split (C(random) when the Caddyfile
    sets none). Other than C(round_robin), the canary's share is approximate, and a warning says so.
  returned: when verified
  type: str
  sample: round_robin
records:
  description:
    - One check result record, criterion C(canary.step), name C(canary.step.split) - C(pass) (applied, and
      verified unless verification is off), C(error) (reload or verification failed; the task fails) or C(skipped)
      (check mode, a change would be made).
    - C(evidence) holds C(weight), C(units), C(canary_share), C(upstreams), C(upstreams_file), C(reload),
      C(reloaded), C(verified), C(restored), C(drift_repaired), C(admin_url) when used, C(config_command) when
      it read Caddy (URLs in it without their passwords), C(upstreams_listed) when read,
      C(lb_policy) when verified and C(caddyfile_template) in the template layout.
  returned: always
  type: list
  elements: dict
status:
  description: The record's status.
  returned: always
  type: str
counts:
  description: Number of records per status.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.caddy_split import (
    MUTUALLY_EXCLUSIVE,
    REQUIRED_BY,
    REQUIRED_IF,
    REQUIRED_ONE_OF,
    SplitInputError,
    SplitOptions,
    SplitPlan,
    SplitRun,
    argument_spec,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import HttpClient


def main():
    module = AnsibleModule(argument_spec=argument_spec(), required_if=REQUIRED_IF, required_one_of=REQUIRED_ONE_OF,
                           mutually_exclusive=MUTUALLY_EXCLUSIVE, required_by=REQUIRED_BY, supports_check_mode=True)
    params = module.params
    try:
        plan = SplitPlan(params["weight"], params["stable_upstreams"], params["canary_upstreams"], params["max_units"])
        options = SplitOptions(params, module.get_bin_path, module.check_mode)
        run = SplitRun(module, plan, options, HttpClient())
    except SplitInputError as exc:
        module.fail_json(msg=str(exc))
    ok, result = run.run()
    if ok:
        module.exit_json(**result)
    module.fail_json(**result)


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cleanwithsnapshot.release.plugins.filter.gate_handoff import gate_handoff
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import decision

RECORD = {"criterion": "health.liveness", "status": "pass", "summary": "/healthz 200", "blocking": True}


def test_results_that_ran_are_slimmed_to_what_the_gate_reads_and_tagged_with_the_host():
    registered = {"records": [RECORD], "changed": False, "invocation": {"module_args": {"base_url": "http://x"}},
                  "status": "pass", "failed": False}
    handed = gate_handoff([registered, None, {"failed": True, "msg": "boom", "exception": "Traceback ..."}], "app1")
    assert handed == [{"records": [RECORD], "failed": False, "host": "app1"},
                      {"failed": True, "msg": "boom", "host": "app1"}]


def test_the_gate_reads_the_hand_off_as_it_read_the_full_results():
    registered = [{"records": [RECORD], "invocation": {"module_args": {}}, "failed": False},
                  {"failed": True, "msg": "psycopg2 is missing"}]
    full = decision.evaluate(results=[dict(r, host="app1") for r in registered], now=None)
    slim = decision.evaluate(results=gate_handoff(registered, "app1"), now=None)
    for key in ("verdict", "failing", "input_errors", "counts"):
        assert slim[key] == full[key]
    assert slim["verdict"] == decision.INCONCLUSIVE


@pytest.mark.parametrize("bad", ["text", {"records": []}, [1]])
def test_anything_but_a_list_of_results_is_a_clear_error(bad):
    with pytest.raises(AnsibleFilterError, match="gate_handoff expects"):
        gate_handoff(bad, "app1")

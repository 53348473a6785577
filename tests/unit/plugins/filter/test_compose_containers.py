"""The compose_containers filter over inspect data of the shape Docker Engine 20.10 returns."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cleanwithsnapshot.release.plugins.filter.compose_containers import compose_containers


def inspect(service, name, running=True, status="running", exit_code=0, restarts=0):
    return {"Id": "id-" + name, "Name": "/" + name, "Image": "sha256:" + service, "RestartCount": restarts,
            "State": {"Status": status, "Running": running, "ExitCode": exit_code},
            "Config": {"Labels": {"com.docker.compose.service": service, "com.docker.compose.project": "cws"}}}


def test_containers_are_summarized_and_sorted_by_service():
    summary = compose_containers([inspect("jobs", "cws-jobs-1", restarts=3),
                                  inspect("api", "cws-api-1"),
                                  inspect("db", "cws-db-1", running=False, status="exited", exit_code=1)])
    assert [c["service"] for c in summary] == ["api", "db", "jobs"]
    assert summary[1] == {"service": "db", "name": "cws-db-1", "id": "id-cws-db-1", "image": "sha256:db",
                          "status": "exited", "running": False, "exit_code": 1, "restarts": 0}
    assert summary[2]["restarts"] == 3


def test_a_vanished_container_and_missing_fields_do_not_break_the_summary():
    summary = compose_containers([None, {"Id": "abc", "Config": {"Labels": None}}])
    assert summary == [{"service": "", "name": "", "id": "abc", "image": "", "status": "unknown", "running": False,
                        "exit_code": None, "restarts": 0}]


def test_input_that_is_not_inspect_data_is_a_clear_error():
    with pytest.raises(AnsibleFilterError, match="expects a list"):
        compose_containers("abc")
    with pytest.raises(AnsibleFilterError, match="dicts"):
        compose_containers(["abc"])

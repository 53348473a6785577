"""host_preflight on this machine: real disk, memory and directories; the container engine as found."""
from __future__ import annotations

import os
import stat

import pytest

from modrun import records_by_name, run_module


def layout(tmp_path, missing=()):
    app = tmp_path / "app"
    for sub in ("logs", "var", "tmp"):
        if sub not in missing:
            (app / sub).mkdir(parents=True)
    app.mkdir(exist_ok=True)
    backups = tmp_path / "backups"
    backups.mkdir()
    return str(app), str(backups)


def fake_engine(tmp_path, engine="24.0.7", compose="2.24.1"):
    """Executables that answer like the Docker CLI and Compose v2 do (no engine can run on this machine)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "docker"
    script.write_text('#!/bin/sh\nif [ "$1" = compose ]; then echo "%s"; else echo "%s"; fi\n' % (compose, engine))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(bindir)


def test_healthy_host_passes(tmp_path):
    app, backups = layout(tmp_path)
    bindir = fake_engine(tmp_path)
    result = run_module("host_preflight", {"app_dir": app, "backup_dir": backups, "min_free_disk_gb": 0.001,
                                           "min_memory_gb": 0.5, "recommended_memory_gb": 0.5},
                        env={"PATH": bindir + os.pathsep + os.environ["PATH"]})
    records = records_by_name(result)
    assert {name: r["status"] for name, r in records.items()} == {
        "host.disk": "pass", "host.memory": "pass", "host.docker": "pass", "host.dirs": "pass"}
    assert records["host.docker"]["evidence"]["engine_version"] == "24.0.7"
    assert result["changed"] is False


def test_each_requirement_fails_with_its_reason(tmp_path):
    app, backups = layout(tmp_path, missing=("logs",))
    bindir = fake_engine(tmp_path, engine="19.03.1", compose="1.29.2")
    result = run_module("host_preflight", {"app_dir": app, "backup_dir": backups, "min_free_disk_gb": 10 ** 6,
                                           "min_memory_gb": 10 ** 6},
                        env={"PATH": bindir + os.pathsep + os.environ["PATH"]})
    records = records_by_name(result)
    assert records["host.disk"]["status"] == "fail" and "at least 1000000" in records["host.disk"]["summary"]
    assert records["host.memory"]["status"] == "fail"
    assert records["host.docker"]["status"] == "fail"
    assert "19.3.1 is older than 20.10" in records["host.docker"]["summary"]
    assert "Compose 1.29.2 is older than 2.0" in records["host.docker"]["summary"]
    assert records["host.dirs"]["status"] == "fail" and "logs is missing" in records["host.dirs"]["summary"]
    assert result["status"] == "fail"


def test_engine_that_does_not_answer_is_not_a_pass(tmp_path):
    app, backups = layout(tmp_path)
    result = run_module("host_preflight", {"app_dir": app, "backup_dir": backups, "min_free_disk_gb": 0,
                                           "docker_command": "no-such-docker-cli", "compose_command": ["no-such-compose"]})
    record = records_by_name(result)["host.docker"]
    assert record["status"] == "fail"
    assert "no-such-docker-cli not found" in record["summary"]


def test_docker_not_required_is_skipped_with_reason(tmp_path):
    app, backups = layout(tmp_path)
    result = run_module("host_preflight", {"app_dir": app, "backup_dir": backups, "min_free_disk_gb": 0, "docker": False},
                        check_mode=True)
    record = records_by_name(result)["host.docker"]
    assert record["status"] == "skipped" and "docker=false" in record["summary"]
    assert record["skip_reason"] == "not_requested"


@pytest.mark.parametrize("args, option", [
    ({"min_free_disk_gb": -1}, "min_free_disk_gb"),
    ({"min_docker_version": "latest"}, "min_docker_version"),
    ({"writable_dirs": ["../etc"]}, "writable_dirs"),
    ({"command_timeout": 0}, "command_timeout"),
])
def test_bad_input_names_the_option(args, option):
    result = run_module("host_preflight", args)
    assert result.get("failed") is True
    assert option in result["msg"]
    assert "Traceback" not in result.raw

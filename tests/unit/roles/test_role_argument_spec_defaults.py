"""Each role's meta/argument_specs.yml documents the defaults the role really runs with.

What `ansible-doc -t role` shows is compared with the role's defaults/main.yml: every default variable is
documented, with the same default (a templated default as its literal expression, the way Ansible keeps it until
it is used), and every documented option has a default or is required. The documented defaults must also pass the
role's own argument validation once Ansible has templated them, so the types the specs declare stay true.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ANSIBLE_BIN = Path(sys.executable).parent
# The values the inventory must give (the options marked required); everything else comes from the defaults.
REQUIRED_INVENTORY = {
    "verify_api_base_url": "http://127.0.0.1:18080",
    "canary_version": "v1.2.3",
    "backup_drill_source_dsn": "postgresql://drill@127.0.0.1:5432/cleanwithsnapshot",
    "deploy_repo": "https://git.example.invalid/cleanwithsnapshot.git",
}


def _load_docs_generator():
    spec = importlib.util.spec_from_file_location("cws_build_docs_for_specs", ROOT / "scripts" / "build_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator():
    return _load_docs_generator()


@pytest.fixture(scope="module")
def role_docs(generator):
    """The roles as `ansible-doc --json -t role` documents them, from this checkout only."""
    roles = generator.discover(ROOT)[1]
    with tempfile.TemporaryDirectory(prefix="cws-role-specs.") as tmp:
        parent = Path(tmp) / "ansible_collections" / generator.NAMESPACE
        parent.mkdir(parents=True)
        (parent / generator.NAME).symlink_to(ROOT)
        return generator.ansible_doc("role", roles, tmp, str(ANSIBLE_BIN / "ansible-doc"))


def _documented_options(doc):
    """{option: [(entry point, spec), ...]} over every entry point of a role."""
    options = {}
    for entry, data in (doc.get("entry_points") or {}).items():
        for name, spec in (data.get("options") or {}).items():
            options.setdefault(name, []).append((entry, spec or {}))
    return options


def test_every_role_is_compared(role_docs):
    assert {"verify", "preflight", "gate", "soak", "canary", "backup_drill", "deploy", "rollback", "lock"} <= set(role_docs)


def test_every_default_variable_is_documented_with_its_default(role_docs, generator):
    problems = []
    for role, doc in sorted(role_docs.items()):
        defaults = generator.role_defaults(ROOT, role)
        options = _documented_options(doc)
        assert options, "%s documents no options" % role
        for name in sorted(set(defaults) - set(options)):
            problems.append("%s: %s is in defaults/main.yml but in no entry point of meta/argument_specs.yml" % (role, name))
        for name, specs in sorted(options.items()):
            for entry, spec in specs:
                where = "%s (%s): %s" % (role, entry, name)
                if spec.get("required"):
                    continue
                if spec.get("default") is None:
                    problems.append("%s has neither a default nor required: true" % where)
                elif name not in defaults:
                    problems.append("%s documents default %r that defaults/main.yml does not set" % (where, spec["default"]))
                elif spec["default"] != defaults[name]:
                    problems.append("%s documents default %s, defaults/main.yml has %s" % (
                        where, json.dumps(spec["default"]), json.dumps(defaults[name])))
    assert not problems, "\n".join(problems)


def test_required_options_are_the_ones_the_inventory_gives(role_docs):
    """A required option is one no default can fill; the validation run below gives exactly these."""
    required = sorted(name for doc in role_docs.values() for name, specs in _documented_options(doc).items()
                      if any(spec.get("required") for entry, spec in specs))
    assert required == sorted(REQUIRED_INVENTORY)


def _validation_playbook(tmp, role_docs):
    """One play: the documented defaults of every role as (lazily templated) play variables, and for each entry
    point the same validation Ansible runs before the role starts."""
    tasks, play_vars = [], {}
    for role, doc in sorted(role_docs.items()):
        for entry, data in sorted((doc.get("entry_points") or {}).items()):
            options = data.get("options") or {}
            for name, spec in options.items():
                if "default" in spec and spec["default"] is not None:
                    play_vars[name] = spec["default"]
            spec_file = Path(tmp) / ("%s.%s.spec.json" % (role, entry))
            spec_file.write_text(json.dumps(options), encoding="utf-8")
            # Every entry point is validated (ignore_errors), so one run names every spec a default fails.
            tasks.append({"name": "%s %s" % (role, entry), "register": "validated_%d" % len(tasks), "ignore_errors": True,
                          "ansible.builtin.validate_argument_spec": {
                              "argument_spec": "{{ lookup('ansible.builtin.file', '%s') | from_json }}" % spec_file}})
    results_file = Path(tmp) / "validated.json"
    tasks.append({"name": "Keep what each validation said", "ansible.builtin.copy": {
        "dest": str(results_file), "mode": "0600",
        "content": "{{ [%s] | to_json }}" % ", ".join("validated_%d" % n for n in range(len(tasks)))}})
    play_vars.update(REQUIRED_INVENTORY)
    vars_file = Path(tmp) / "documented_defaults.yml"
    vars_file.write_text(yaml.safe_dump(play_vars, sort_keys=True), encoding="utf-8")
    playbook = Path(tmp) / "validate.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Validate the documented defaults", "hosts": "localhost", "gather_facts": False,
        "vars_files": [str(vars_file)], "tasks": tasks}], sort_keys=False), encoding="utf-8")
    return playbook, results_file, [task["name"] for task in tasks[:-1]]


def test_documented_defaults_pass_the_roles_own_validation(role_docs, tmp_path):
    playbook, results_file, validations = _validation_playbook(tmp_path, role_docs)
    env = {"PATH": "%s:/usr/bin:/bin" % ANSIBLE_BIN, "HOME": str(tmp_path), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
           "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "no-collections"), "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
           "ANSIBLE_LOCALHOST_WARNING": "false"}
    proc = subprocess.run([str(ANSIBLE_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    said = json.loads(results_file.read_text(encoding="utf-8"))
    assert len(said) == len(validations) >= 9
    failed = ["%s: %s" % (name, result.get("msg")) for name, result in zip(validations, said)
              if result.get("failed") or result.get("msg") != "The arg spec validation passed"]
    assert not failed, "\n".join(failed)

"""awx/configure_awx.yml: the awx.awx collection it needs, its syntax, its guards, and a full run of the
real awx.awx modules against an in-memory stand-in of the controller API (fake_controller.py; no AWX can
run here), with canary secrets that must reach the controller and never the output."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fake_controller import FakeController

ROOT = Path(__file__).resolve().parents[3]
COLLECTIONS = ROOT / ".build" / "collections"
AWX = COLLECTIONS / "ansible_collections" / "awx" / "awx"
BIN = Path(sys.executable).parent
PASSWORD = "test-vault-password-for-configure-awx"
CANARY = {
    "vault_release_db_dsn": "postgresql://owner:canary-db-pw-7Qx2@db.internal:5432/cleaning",
    "vault_release_metrics_token": "canary-metrics-token-3Hq9Zr",
    "vault_admin_basic_username": "canary-admin-user",
    "vault_admin_basic_password": "canary-admin-pw-Lm41",
    "vault_dispatcher_basic_username": "canary-dispatcher-user",
    "vault_dispatcher_basic_password": "canary-dispatcher-pw-Pk07",
    "vault_accountant_basic_username": "canary-accountant-user",
    "vault_accountant_basic_password": "canary-accountant-pw-Wd55",
    "vault_viewer_basic_username": "canary-viewer-user",
    "vault_viewer_basic_password": "canary-viewer-pw-Ty63",
}
CANARY_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\ncanary-ssh-key-Vb28\n-----END OPENSSH PRIVATE KEY-----\n"
SECRET_VALUES = [v for k, v in CANARY.items() if "password" in k or "dsn" in k or "token" in k]
SECRET_VALUES += ["canary-ssh-key-Vb28", "canary-db-pw-7Qx2"]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTROLLER_", "TOWER_", "ANSIBLE_"))}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
               PATH="%s:%s" % (BIN, env.get("PATH", "")))
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def awx_collection():
    """scripts/fetch_collections.sh, for real: the collections awx/requirements.yml pins, at their versions."""
    proc = subprocess.run(["bash", "scripts/fetch_collections.sh"], cwd=str(ROOT), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_fetch_collections_installs_the_pinned_collections_once(awx_collection):
    pins = {c["name"]: c["version"] for c in yaml.safe_load((ROOT / "awx" / "requirements.yml").read_text())["collections"]}
    assert set(pins) == {"awx.awx", "community.docker", "community.library_inventory_filtering_v1"}
    pin = {"name": "awx.awx", "version": pins["awx.awx"]}
    docker = json.loads((COLLECTIONS / "ansible_collections" / "community" / "docker" / "MANIFEST.json").read_text())
    assert docker["collection_info"]["version"] == pins["community.docker"]
    manifest = json.loads((AWX / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["version"] == pin["version"]
    assert (AWX / "plugins" / "modules" / "workflow_job_template_node.py").is_file()
    # Only the named collection is extracted from the ansible package.
    namespaces = sorted(p.name for p in (COLLECTIONS / "ansible_collections").iterdir())
    assert namespaces == ["awx", "cleanwithsnapshot", "community"]
    assert sorted(p.name for p in (COLLECTIONS / "ansible_collections" / "community").iterdir()) == [
        "docker", "library_inventory_filtering_v1"]
    # community.docker's own dependency is satisfied by what is installed, so nothing asks Galaxy for it.
    filtering = json.loads((COLLECTIONS / "ansible_collections" / "community" / "library_inventory_filtering_v1" /
                            "MANIFEST.json").read_text())
    assert filtering["collection_info"]["version"] == pins["community.library_inventory_filtering_v1"]
    before = (AWX / "MANIFEST.json").stat().st_mtime_ns
    again = subprocess.run(["bash", "scripts/fetch_collections.sh"], cwd=str(ROOT), capture_output=True, text=True, check=False)
    assert again.returncode == 0 and "awx.awx %s already in place" % pin["version"] in again.stdout
    assert (AWX / "MANIFEST.json").stat().st_mtime_ns == before


def test_syntax_check(awx_collection):
    proc = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "awx/configure_awx.yml"], cwd=str(ROOT),
                          env=_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_task_option_is_an_option_of_its_awx_module(awx_collection):
    play = yaml.safe_load((ROOT / "awx" / "configure_awx.yml").read_text())[0]
    used = {}
    for task in play["tasks"]:
        for key, args in task.items():
            if key.startswith("awx.awx."):
                used.setdefault(key, set()).update(args)
    assert len(used) >= 10
    proc = subprocess.run([str(BIN / "ansible-doc"), "--json"] + sorted(used), env=_env(), capture_output=True, text=True, check=True)
    docs = json.loads(proc.stdout)
    for module, options in used.items():
        known = set()
        for name, spec in docs[module]["doc"]["options"].items():
            known.add(name)
            known.update(spec.get("aliases") or [])
        assert options <= known, "%s: unknown options %s" % (module, sorted(options - known))


def test_refuses_to_run_without_a_controller(awx_collection):
    proc = subprocess.run([str(BIN / "ansible-playbook"), "awx/configure_awx.yml", "--vault-password-file",
                           "inventories/vault-password.example"], cwd=str(ROOT), env=_env(), capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "Set CONTROLLER_HOST" in proc.stdout


def _encrypt(plaintext, tmp_path):
    password_file = tmp_path / "vault-pass"
    password_file.write_text(PASSWORD)
    proc = subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(password_file), "--output", "-", "-"],
                          input=plaintext, capture_output=True, text=True, env=_env(), check=True)
    return proc.stdout


@pytest.fixture()
def tree(tmp_path):
    """The playbook, its vars and a 'canary' environment (inventories/canary) with canary secrets."""
    base = tmp_path / "repo"
    shutil.copytree(ROOT / "awx", base / "awx")
    group_vars = base / "inventories" / "canary" / "group_vars" / "all"
    group_vars.mkdir(parents=True)
    shutil.copy(ROOT / "inventories" / "prod" / "group_vars" / "all" / "main.yml", group_vars / "main.yml")
    (group_vars / "vault.yml").write_text(_encrypt(yaml.safe_dump(CANARY), tmp_path))
    (base / "awx" / "vars" / "vault.yml").write_text(_encrypt(yaml.safe_dump({"vault_awx_ssh_private_key": CANARY_KEY}), tmp_path))
    return base


def _run(tree, controller, *extra):
    return subprocess.run([str(BIN / "ansible-playbook"), "-vvv", "awx/configure_awx.yml", "-e", "awx_env=canary",
                           "--vault-password-file", str(tree.parent / "vault-pass")] + list(extra),
                          cwd=str(tree), env=_env(CONTROLLER_HOST=controller.url, CONTROLLER_OAUTH_TOKEN="token-for-the-fake-controller"),
                          capture_output=True, text=True, check=False)


def _changed_tasks(output):
    changed = []
    task = None
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line[6:line.index("]")]
        elif line.startswith("changed:") and task not in changed:
            changed.append(task)
    return changed


@pytest.mark.slow
def test_configures_the_controller_without_leaking_a_secret(awx_collection, tree):
    controller = FakeController().start()
    try:
        first = _run(tree, controller)
        output = first.stdout + first.stderr
        assert first.returncode == 0, output[-6000:]
        for secret in SECRET_VALUES:
            assert secret not in output, "a secret reached the output at -vvv"

        # Credential types: AWX's own templates reach AWX untouched, inputs marked secret.
        basic = controller.one("credential_types", name="CleanWithSnapshot admin Basic Auth")
        assert basic["injectors"]["extra_vars"]["vault_admin_basic_password"] == "{{ admin_password }}"
        assert {f["id"] for f in basic["inputs"]["fields"] if f.get("secret")} == {
            "admin_password", "dispatcher_password", "accountant_password", "viewer_password"}
        db_type = controller.one("credential_types", name="CleanWithSnapshot database")
        assert db_type["injectors"]["extra_vars"]["vault_release_db_dsn"] == "{{ dsn }}"

        # Credentials: the vault's values (and only there).
        org = controller.one("organizations", name="CleanWithSnapshot")
        db = controller.one("credentials", name="cleanwithsnapshot release (canary) database")
        assert db["inputs"]["dsn"] == CANARY["vault_release_db_dsn"] and db["organization"] == org["id"]
        assert db["credential_type"] == db_type["id"]
        auth = controller.one("credentials", name="cleanwithsnapshot release (canary) admin Basic Auth")
        assert auth["inputs"]["viewer_password"] == CANARY["vault_viewer_basic_password"]
        ssh = controller.one("credentials", name="cleanwithsnapshot release (canary) SSH")
        assert ssh["inputs"] == {"username": "deploy", "ssh_key_data": CANARY_KEY}
        assert ssh["credential_type"] == controller.one("credential_types", name="Machine")["id"]

        # Inventory: the environment's main.yml, unrendered; hosts from the project without group_vars.
        inventory = controller.one("inventories", name="cleanwithsnapshot release (canary)")
        variables = inventory["variables"]
        variables = yaml.safe_load(variables) if isinstance(variables, str) else variables
        expected = yaml.safe_load((ROOT / "inventories" / "prod" / "group_vars" / "all" / "main.yml").read_text())
        assert variables == expected
        assert variables["release_db_dsn"] == "{{ vault_release_db_dsn }}"
        source = controller.one("inventory_sources", name="inventories/canary (project)")
        source_vars = source["source_vars"]
        source_vars = yaml.safe_load(source_vars) if isinstance(source_vars, str) else source_vars
        project = controller.one("projects", name="cleanwithsnapshot release")
        assert source["source"] == "scm" and source["source_path"] == "inventories/canary/hosts.yml"
        assert source["source_project"] == project["id"] and source["inventory"] == inventory["id"]
        assert source_vars == {"ANSIBLE_VARS_PLUGIN_STAGE": "task"}

        # Job templates, their credentials and surveys.
        templates = {jt["playbook"]: jt for jt in controller.find("job_templates")}
        assert sorted(templates) == ["playbooks/backup_drill.yml", "playbooks/release.yml", "playbooks/rollback.yml",
                                     "playbooks/verify.yml"]
        release = templates["playbooks/release.yml"]
        assert len(controller.linked(release, "credentials")) == 4
        assert sorted(controller.linked(templates["playbooks/backup_drill.yml"], "credentials")) == sorted([ssh["id"], db["id"]])
        spec = controller.survey(release)["spec"]
        assert [(q["variable"], q["required"]) for q in spec] == [("deploy_version", True)]
        extra = release["extra_vars"]
        extra = yaml.safe_load(extra) if isinstance(extra, str) else extra
        assert extra == {"release_label": "{{ deploy_version | default('') }}", "release_auto_rollback": False}
        assert templates["playbooks/verify.yml"]["ask_job_type_on_launch"] is True
        assert controller.survey(templates["playbooks/rollback.yml"])["spec"][0]["variable"] == "rollback_to"

        # Workflow: approval -> release -> (failure) rollback.
        workflow = controller.one("workflow_job_templates")
        assert controller.survey(workflow)["spec"][0]["variable"] == "deploy_version"
        nodes = {n["identifier"]: n for n in controller.find("workflow_job_template_nodes", workflow_job_template=workflow["id"])}
        assert sorted(nodes) == ["approve", "release", "rollback"]
        approval = controller.one("workflow_approval_templates")
        assert nodes["approve"]["unified_job_template"] == approval["id"] and approval["timeout"] == 14400
        assert controller.linked(nodes["approve"], "success_nodes") == [nodes["release"]["id"]]
        assert nodes["release"]["unified_job_template"] == release["id"]
        assert controller.linked(nodes["release"], "failure_nodes") == [nodes["rollback"]["id"]]
        assert controller.linked(nodes["release"], "success_nodes") == []
        assert nodes["rollback"]["unified_job_template"] == templates["playbooks/rollback.yml"]["id"]

        # Schedules.
        schedules = {s["name"]: s for s in controller.find("schedules")}
        nightly = schedules["cleanwithsnapshot release (canary): nightly verify"]
        weekly = schedules["cleanwithsnapshot release (canary): weekly backup drill"]
        assert nightly["unified_job_template"] == templates["playbooks/verify.yml"]["id"] and "FREQ=DAILY" in nightly["rrule"]
        assert weekly["unified_job_template"] == templates["playbooks/backup_drill.yml"]["id"] and "BYDAY=SU" in weekly["rrule"]

        # A second run creates nothing new; only the stored secrets are written again.
        counts = {c: len(objs) for c, objs in controller.objects.items()}
        second = _run(tree, controller)
        assert second.returncode == 0, (second.stdout + second.stderr)[-6000:]
        assert {c: len(objs) for c, objs in controller.objects.items()} == counts
        assert _changed_tasks(second.stdout) == ["Credentials"]
        third = _run(tree, controller, "-e", "awx_update_secrets=false")
        assert third.returncode == 0 and _changed_tasks(third.stdout) == []
    finally:
        controller.stop()


def test_refuses_shipped_placeholders(awx_collection, tree):
    placeholders = dict(CANARY, vault_admin_basic_password="REPLACE_ME", vault_release_metrics_token="REPLACE_ME_METRICS_TOKEN")
    vault = tree / "inventories" / "canary" / "group_vars" / "all" / "vault.yml"
    vault.write_text(_encrypt(yaml.safe_dump(placeholders), tree.parent))
    controller = FakeController().start()
    try:
        proc = _run(tree, controller)
        assert proc.returncode != 0
        assert "2 credential input(s) still hold a REPLACE_ME placeholder" in proc.stdout
        assert not [r for r in controller.requests if r[0] != "GET"], "nothing may be written before the guard"
        for secret in SECRET_VALUES:
            assert secret not in proc.stdout + proc.stderr
    finally:
        controller.stop()

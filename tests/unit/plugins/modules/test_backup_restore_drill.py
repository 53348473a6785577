"""backup_restore_drill's input without a database: the restore server's connection defaults to the
source's, and every secret option is no_log."""
from __future__ import annotations

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.drill import target_params
from ansible_collections.cleanwithsnapshot.release.plugins.modules import backup_restore_drill as drill

CANARY = "canary-drill-Qx7"


def base_params(**overrides):
    params = dict((name, spec.get("default")) for name, spec in drill.argument_spec().items())
    params.update(overrides)
    return params


def test_target_defaults_to_the_source_connection():
    params = base_params(login_host="db", login_port=6543, login_user="postgres", login_password=CANARY, login_db="cleaning")
    target = target_params(params)
    assert (target["login_host"], target["login_port"], target["login_user"], target["login_password"]) == ("db", 6543, "postgres", CANARY)
    assert target["login_db"] == "postgres"
    other = target_params(dict(params, target_host="drill", target_user="restorer"))
    assert other["login_host"] == "drill" and other["login_user"] == "restorer" and other["login_password"] is None
    from_dsn = target_params(base_params(dsn="postgresql+psycopg://u:%s@h:7/db?sslmode=require" % CANARY))
    assert (from_dsn["login_host"], from_dsn["login_port"], from_dsn["login_password"], from_dsn["ssl_mode"]) == ("h", 7, CANARY, "require")
    explicit = target_params(dict(params, target_dsn="postgresql://x:y@z/w"))
    assert explicit["dsn"] == "postgresql://x:y@z/w" and explicit["login_db"] == "postgres"


def test_argument_spec_marks_every_secret_no_log():
    spec = drill.argument_spec()
    for name in ("login_password", "dsn", "target_password", "target_dsn"):
        assert spec[name].get("no_log") is True
    assert not [n for n, s in spec.items() if ("password" in n or "dsn" in n) and not s.get("no_log")]

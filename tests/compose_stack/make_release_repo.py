"""Create a small git repository of the reference service with release tags, for deploy/rollback tests.

    python3 tests/compose_stack/make_release_repo.py --dest DIR [--source tests/reference_service]

The service code is COPIED from tests/reference_service at build time (refservice/, migrations/,
alembic.ini: never forked), next to the files that make it a compose-deployed service (Dockerfile,
docker-compose.yml, deploy/db-entrypoint.sh, .env.example). Tags (commit dates are fixed, so the same
inputs give the same SHAs):

  v1          good: the reference service as it is
  v2          good: v1 plus a migration (a new org table with RLS enabled, forced and its policy)
  v3          bad: the api is pointed at a database that does not exist (a configuration slip), so
              /readyz answers 503 and the release must not go out
  v3-rls      bad: v2 plus a migration that drops an RLS policy (readiness still passes; the RLS check
              must catch it); after it the database is ahead of v2's head
  v3-migfail  bad: v2 plus a migration that fails (adds a column that exists): `alembic upgrade head`
              must stop the release with its error

Prints a JSON object {path, tags: {tag: sha}, heads: {tag: [head]}} on stdout.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TEMPLATES = os.path.join(HERE, "service_files")
COPIED = ("refservice", "migrations", "alembic.ini")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Release Engineering", "GIT_AUTHOR_EMAIL": "release@example.invalid",
    "GIT_COMMITTER_NAME": "Release Engineering", "GIT_COMMITTER_EMAIL": "release@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(repo, *args, date=None):
    env = dict(os.environ, **GIT_ENV)
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    done = subprocess.run(["git", "-C", repo] + list(args), env=env, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit("make_release_repo: git %s failed: %s" % (" ".join(args), done.stderr.strip()))
    return done.stdout.strip()


def script_heads(versions_dir):
    """Head revisions of an Alembic versions folder, read with ast (nothing imported)."""
    revisions, parents = set(), set()
    for name in sorted(os.listdir(versions_dir)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(versions_dir, name), encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), filename=name)
        found = {}
        for node in tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                        found[target.id] = ast.literal_eval(node.value)
        if "revision" not in found:
            continue
        revisions.add(found["revision"])
        down = found.get("down_revision")
        if isinstance(down, str):
            parents.add(down)
        elif down:
            parents.update(down)
    return sorted(revisions - parents)


MIGRATION = '''"""{doc}

Revision ID: {revision}
Revises: {down}
Create Date: {date}
"""
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''

ORG_EXPR = "org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid"


def v2_migration(down):
    upgrade = "\n".join([
        '    op.execute("""',
        "        CREATE TABLE service_notes (",
        "            note_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),",
        "            org_id uuid NOT NULL REFERENCES organizations (org_id),",
        "            body text NOT NULL,",
        "            created_at timestamptz NOT NULL DEFAULT now()",
        '        )""")',
        '    op.execute("CREATE INDEX ix_service_notes_org_id ON service_notes (org_id)")',
        '    op.execute("ALTER TABLE service_notes ENABLE ROW LEVEL SECURITY")',
        '    op.execute("ALTER TABLE service_notes FORCE ROW LEVEL SECURITY")',
        '    op.execute("CREATE POLICY service_notes_org_isolation ON service_notes USING (%s) WITH CHECK (%s)")'
        % (ORG_EXPR, ORG_EXPR),
    ])
    downgrade = '    op.execute("DROP TABLE service_notes")'
    return MIGRATION.format(doc="Service notes per organization, isolated by RLS (release v2).",
                            revision="0046_service_notes", down=down, date="2026-03-02",
                            upgrade=upgrade, downgrade=downgrade)


def rls_drop_migration(down):
    upgrade = '    op.execute("DROP POLICY leads_org_isolation ON leads")'
    downgrade = '    op.execute("CREATE POLICY leads_org_isolation ON leads USING (%s) WITH CHECK (%s)")' % (ORG_EXPR, ORG_EXPR)
    return "0047_leads_policy_cleanup", MIGRATION.format(
        doc="Simplify lead access (BAD: drops the leads RLS policy).", revision="0047_leads_policy_cleanup",
        down=down, date="2026-03-09", upgrade=upgrade, downgrade=downgrade)


def failing_migration(down):
    upgrade = '    op.execute("ALTER TABLE leads ADD COLUMN referral_code text")'
    downgrade = "    pass"
    return "0047_lead_referral_codes", MIGRATION.format(
        doc="Lead referral codes (BAD: the column already exists, so the migration fails).",
        revision="0047_lead_referral_codes", down=down, date="2026-03-09", upgrade=upgrade, downgrade=downgrade)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def release_file(repo, tag, note):
    write(os.path.join(repo, "RELEASE"), "%s\n%s\n" % (tag, note))


def build(dest, source):
    if os.path.exists(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    git(dest, "init", "-q", "-b", "main")
    for name in os.listdir(TEMPLATES):
        src = os.path.join(TEMPLATES, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dest, name), ignore=IGNORED)
        else:
            shutil.copy2(src, os.path.join(dest, name))
    os.rename(os.path.join(dest, "gitignore"), os.path.join(dest, ".gitignore"))
    os.rename(os.path.join(dest, "dockerignore"), os.path.join(dest, ".dockerignore"))
    os.rename(os.path.join(dest, "env.example"), os.path.join(dest, ".env.example"))
    for name in COPIED:
        src = os.path.join(source, name)
        if not os.path.exists(src):
            raise SystemExit("make_release_repo: %s is missing in %s" % (name, source))
        target = os.path.join(dest, "app", name)
        if os.path.isdir(src):
            shutil.copytree(src, target, ignore=IGNORED)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(src, target)
    versions = os.path.join(dest, "app", "migrations", "versions")
    base_heads = script_heads(versions)
    if len(base_heads) != 1:
        raise SystemExit("make_release_repo: the reference service has %d Alembic heads (%s), expected one"
                         % (len(base_heads), ", ".join(base_heads)))
    tags, heads = {}, {}

    def commit(tag, message, date):
        git(dest, "add", "-A")
        git(dest, "commit", "-q", "-m", message, date=date)
        git(dest, "tag", "-a", tag, "-m", "release %s" % tag, date=date)
        tags[tag] = git(dest, "rev-parse", "HEAD")
        heads[tag] = script_heads(versions)

    release_file(dest, "v1", "the reference service")
    commit("v1", "Release v1: the reference service", "2026-03-01T10:00:00+00:00")

    write(os.path.join(versions, "0046_service_notes.py"), v2_migration(base_heads[0]))
    release_file(dest, "v2", "service notes (migration 0046, RLS)")
    commit("v2", "Release v2: service notes table with RLS", "2026-03-02T10:00:00+00:00")

    # v3: a configuration slip in the compose file: the api reads a database that does not exist.
    compose = os.path.join(dest, "docker-compose.yml")
    with open(compose, encoding="utf-8") as handle:
        text = handle.read()
    marker = "      REFSERVICE_STATE_DIR: /app/var/state\n"
    if marker not in text:
        raise SystemExit("make_release_repo: docker-compose.yml template lacks the api environment marker")
    slip = ("      DATABASE_URL: postgresql://${DB_APP_USER:-cws_app}:${DB_APP_PASSWORD}@db:5432/${DB_NAME:-cleanwithsnapshot}_reporting\n")
    write(compose, text.replace(marker, marker + slip, 1))
    release_file(dest, "v3", "reporting database switch (BAD: that database does not exist)")
    commit("v3", "Release v3: read from the reporting database", "2026-03-03T10:00:00+00:00")

    for tag, maker, note, date in (
            ("v3-rls", rls_drop_migration, "lead access cleanup (BAD: drops an RLS policy)", "2026-03-04T10:00:00+00:00"),
            ("v3-migfail", failing_migration, "lead referral codes (BAD: the migration fails)", "2026-03-05T10:00:00+00:00")):
        git(dest, "checkout", "-q", "-B", "branch-" + tag, "v2")
        revision, text = maker(heads["v2"][0])
        write(os.path.join(versions, revision + ".py"), text)
        release_file(dest, tag, note)
        commit(tag, "Release %s: %s" % (tag, note), date)
    git(dest, "checkout", "-q", "main")
    # The deployable default branch carries the newest good release.
    git(dest, "reset", "-q", "--hard", "v2")
    return {"path": dest, "tags": tags, "heads": heads}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", required=True, help="directory to (re)create the repository in")
    parser.add_argument("--source", default=os.path.join(ROOT, "tests", "reference_service"),
                        help="the reference service to copy (default: tests/reference_service)")
    args = parser.parse_args(argv)
    result = build(os.path.abspath(args.dest), os.path.abspath(args.source))
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

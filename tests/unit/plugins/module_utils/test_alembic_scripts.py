"""The migration-script parser: heads, merges, branch labels, depends_on, read without importing,
and on every fixture directory the same answer as Alembic itself (a test-only comparison)."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
from alembic.util import to_tuple

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import alembic_scripts as scripts

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "migrations"
FIXTURE_DIRS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def graph_of(name, recursive=False):
    return scripts.RevisionGraph(scripts.load_scripts(str(FIXTURES / name), recursive=recursive))


def alembic_dir(name, recursive=False):
    from alembic.script import ScriptDirectory  # pylint: disable=import-outside-toplevel
    return ScriptDirectory(str(FIXTURES / name), recursive_version_locations=recursive)


def test_fixture_set_is_complete():
    assert {"linear", "merged", "two_heads", "labels_depends", "three_way", "oddities"} <= set(FIXTURE_DIRS)


@pytest.mark.parametrize("recursive", [False, True])
@pytest.mark.parametrize("name", FIXTURE_DIRS)
def test_heads_and_revisions_equal_alembics(name, recursive):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real = alembic_dir(name, recursive)
        real_heads = set(real.get_heads())
        real_revisions = dict((rev.revision, rev) for rev in real.walk_revisions())
    graph = graph_of(name, recursive)
    assert graph.problems == []
    assert set(graph.heads) == real_heads
    assert set(graph.revisions) == set(real_revisions)
    for rev, script in graph.revisions.items():
        assert set(script["down_revision"]) == set(real_revisions[rev]._versioned_down_revisions)
        # Alembic spreads labels to descendants; what the script itself declares is kept apart.
        assert set(script["branch_labels"]) == set(real_revisions[rev]._orig_branch_labels)
        assert set(script["depends_on"]) == set(to_tuple(real_revisions[rev].dependencies, default=()))


@pytest.mark.parametrize("name", FIXTURE_DIRS)
def test_pending_revisions_equal_alembics_upgrade_plan(name):
    """From every possible current revision (and from nothing), the revisions the check calls
    pending are exactly those `alembic upgrade heads` would run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real = alembic_dir(name)
        graph = graph_of(name)
        for current in [None] + sorted(graph.revisions):
            plan = sorted(step.revision.revision for step in real._upgrade_revs("heads", current))
            outcome = scripts.compare(graph, [current] if current else [], graph.heads)
            assert outcome["pending"] == plan, current
            assert outcome["behind"] == len(plan)
            # at head exactly when Alembic has nothing left to run
            assert outcome["at_head"] == (not plan and current is not None)


def test_merge_history_shape():
    graph = graph_of("merged")
    assert graph.heads == ("merge_20260301_01",)
    assert graph.revisions["merge_20260224_01"]["down_revision"] == ("0003_a2", "0002_b")
    assert graph.bases == ("0001_init",)
    behind = scripts.compare(graph, ["0002_b"], graph.heads)
    assert behind["behind"] == 5 and not behind["at_head"]
    assert behind["pending"] == sorted(["0002_a", "0003_a2", "merge_20260224_01", "0005_after_merge", "merge_20260301_01"])
    assert scripts.compare(graph, ["merge_20260301_01"], graph.heads)["at_head"]


def test_two_heads_and_both_applied():
    graph = graph_of("two_heads")
    assert set(graph.heads) == {"bbb_left", "ccc_right"}
    both = scripts.compare(graph, ["bbb_left", "ccc_right"], graph.heads)
    assert both["at_head"] and both["behind"] == 0
    one = scripts.compare(graph, ["bbb_left"], graph.heads)
    assert one["pending"] == ["ccc_right"] and not one["at_head"]


def test_labels_and_depends_on_resolve():
    graph = graph_of("labels_depends")
    assert graph.labels == {"core": "a1_core", "audit": "b1_audit", "reports": "c1_reports", "reporting": "c1_reports"}
    assert graph.deps["b1_audit"] == ("a1_core",)          # a branch label
    assert graph.deps["c1_reports"] == ("a2_core", "b1_audit")
    assert set(graph.heads) == {"a2_core", "b2_audit", "c1_reports"}
    # depends_on pulls the dependency into the applied set
    assert graph.ancestors(["b2_audit"]) == {"b2_audit", "b1_audit", "a1_core", "a2_core"}


def test_depends_on_a_head_keeps_it_a_head():
    graph = graph_of("three_way")
    assert set(graph.heads) == {"rm", "x1"}
    assert graph.revisions["rm"]["down_revision"] == ("r1", "r2", "r3")


def test_oddities_legacy_tuple_last_assignment_and_recursion():
    flat = graph_of("oddities")
    assert set(flat.revisions) == {"1a2b3c4d", "2_tuple", "3_last_wins"}
    assert flat.revisions["2_tuple"]["down_revision"] == ("1a2b3c4d",)
    assert flat.heads == ("3_last_wins",)
    deep = graph_of("oddities", recursive=True)
    assert deep.heads == ("4_nested",)


def test_ahead_unknown_and_extra():
    graph = graph_of("merged")
    ahead = scripts.compare(graph, ["merge_20260301_01"], ["merge_20260224_01"])
    assert ahead["ahead"] == ["merge_20260301_01"] and ahead["ahead_by"] == 2 and not ahead["at_head"]
    assert ahead["extra"] == []
    unknown = scripts.compare(graph, ["ffff0000"], graph.heads)
    assert unknown["unknown"] == ["ffff0000"] and not unknown["at_head"]
    sideways = scripts.compare(graph_of("two_heads"), ["ccc_right"], ["bbb_left"])
    assert sideways["extra"] == ["ccc_right"] and sideways["pending"] == ["bbb_left"]
    empty = scripts.compare(graph, [], graph.heads)
    assert not empty["at_head"] and empty["behind"] == len(graph.revisions)


@pytest.mark.parametrize("source, expected", [
    ('revision: str = "x"\ndown_revision: Union[str, None] = None\n', {"revision": "x", "down_revision": ()}),
    ('revision = "m"\ndown_revision = ("a", "b")\n', {"revision": "m", "down_revision": ("a", "b")}),
    ('revision = "m"\ndown_revision = ["a", "b"]\nbranch_labels = "lbl"\n', {"down_revision": ("a", "b"), "branch_labels": ("lbl",)}),
    ('revision = "y"\ndepends_on = {"b", "a"}\n', {"depends_on": ("a", "b")}),
    ('revision = "y"\nbranch_labels: Optional[Sequence[str]]\n', {"branch_labels": ()}),
    ('"""doc"""\nimport os\nif os:\n    revision = "nested"\nrevision = "top"\n', {"revision": "top"}),
    ('down_revision = None\n', {"revision": None}),
])
def test_parse_source(source, expected):
    parsed = scripts.parse_source(source)
    for key, value in expected.items():
        assert parsed[key] == value


@pytest.mark.parametrize("source, message", [
    ('revision = make_id()\n', "revision is not a literal"),
    ('revision = "a"\ndown_revision = 5\n', "down_revision must be a string"),
    ('revision = "a"\ndown_revision = ("a", 5)\n', "non-string item"),
    ('revision = ("a", "b")\n', "revision must be one string"),
    ('def broken(:\n', "not valid Python"),
    ('revision, down_revision = compute()\n', "cannot read the tuple assignment"),
])
def test_parse_source_errors_name_the_problem(source, message):
    with pytest.raises(scripts.MigrationScriptError) as err:
        scripts.parse_source(source, filename="bad.py")
    assert message in str(err.value) and "bad.py" in str(err.value)


def test_scripts_are_never_imported(tmp_path):
    versions = tmp_path / "versions"
    versions.mkdir()
    marker = tmp_path / "imported"
    (versions / "a.py").write_text(
        'import pathlib\npathlib.Path(%r).write_text("x")\nimport app.models  # not installed here\n'
        'revision = "a"\ndown_revision = None\n' % str(marker))
    graph = scripts.RevisionGraph(scripts.load_scripts(str(tmp_path)))
    assert graph.heads == ("a",)
    assert not marker.exists()


def write(versions, name, text):
    (versions / name).write_text(text)


def test_broken_histories_are_reported(tmp_path):
    versions = tmp_path / "versions"
    versions.mkdir()
    write(versions, "a.py", 'revision = "a"\ndown_revision = None\nbranch_labels = ("lbl",)\n')
    write(versions, "b.py", 'revision = "b"\ndown_revision = "gone"\n')
    write(versions, "c.py", 'revision = "c"\ndown_revision = "a"\n')
    write(versions, "e.py", 'revision = "e"\ndown_revision = "c"\ndepends_on = "nowhere"\n')
    write(versions, "c2.py", 'revision = "c"\ndown_revision = "a"\n')
    write(versions, "d.py", 'revision = "d"\ndown_revision = "a"\nbranch_labels = "lbl"\n')
    graph = scripts.RevisionGraph(scripts.load_scripts(str(tmp_path)))
    text = "\n".join(graph.problems)
    assert "revision b names down_revision gone, which is not present" in text
    assert "depends_on nowhere" in text
    assert "revision c is present more than once" in text
    assert "branch label 'lbl' is used by both" in text


def test_cycle_is_reported(tmp_path):
    write(tmp_path, "a.py", 'revision = "a"\ndown_revision = "c"\n')
    write(tmp_path, "b.py", 'revision = "b"\ndown_revision = "a"\n')
    write(tmp_path, "c.py", 'revision = "c"\ndown_revision = "b"\n')
    graph = scripts.RevisionGraph(scripts.load_scripts(str(tmp_path)))
    assert any("cycle" in problem for problem in graph.problems)
    assert graph.heads == ()


def test_missing_revision_and_unreadable_dir(tmp_path):
    write(tmp_path, "not_hex_name.py", 'down_revision = None\n')
    with pytest.raises(scripts.MigrationScriptError) as err:
        scripts.load_scripts(str(tmp_path))
    assert "no revision variable" in str(err.value)
    with pytest.raises(scripts.MigrationScriptError):
        scripts.load_scripts(str(tmp_path / "absent"))


def test_versions_dir_given_directly():
    direct = scripts.RevisionGraph(scripts.load_scripts(str(FIXTURES / "merged" / "versions")))
    assert direct.heads == graph_of("merged").heads
    assert os.path.basename(direct.revisions["merge_20260224_01"]["path"]) == "0004_merge.py"

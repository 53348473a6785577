"""docs/reference/ is generated from the modules' and roles' own documentation (scripts/build_docs.py):
the committed pages must be what the generator writes today, and the generator must notice a stale page."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "build_docs.py"
REFERENCE = ROOT / "docs" / "reference"


def _load_generator():
    spec = importlib.util.spec_from_file_location("cws_build_docs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator():
    return _load_generator()


def _check(out):
    return subprocess.run([sys.executable, str(SCRIPT), "--check", "--out", str(out)],
                          capture_output=True, text=True, cwd=str(ROOT), check=False)


def test_committed_reference_pages_are_up_to_date():
    proc = _check(REFERENCE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up to date" in proc.stdout


def test_every_module_and_role_has_a_page(generator):
    modules, roles = generator.discover(ROOT)
    assert "gate" in modules and "readiness_probe" in modules
    assert "verify" in roles and "gate" in roles
    for name in modules:
        page = (REFERENCE / "modules" / ("%s.md" % name)).read_text(encoding="utf-8")
        assert page.startswith(generator.GENERATED_NOTE)
        assert "# cleanwithsnapshot.release.%s\n" % name in page
        assert "## Options" in page
    for name in roles:
        page = (REFERENCE / "roles" / ("%s.md" % name)).read_text(encoding="utf-8")
        assert "# cleanwithsnapshot.release.%s (role)" % name in page
        assert "## Entry point `main`" in page


def test_check_names_a_stale_a_missing_and_a_left_over_page(tmp_path, generator):
    out = tmp_path / "reference"
    shutil.copytree(REFERENCE, out)
    stale = out / "modules" / "gate.md"
    stale.write_text(stale.read_text(encoding="utf-8").replace("Decide GO or NO-GO", "Decide something else", 1), encoding="utf-8")
    (out / "roles" / "verify.md").unlink()
    (out / "modules" / "removed_module.md").write_text("old\n", encoding="utf-8")
    proc = _check(out)
    assert proc.returncode == 1
    assert "stale or missing: %s" % stale in proc.stdout
    assert "stale or missing: %s" % (out / "roles" / "verify.md") in proc.stdout
    assert "no longer generated (delete it): %s" % (out / "modules" / "removed_module.md") in proc.stdout
    assert "run 'bash scripts/build_docs.sh'" in proc.stdout


def test_pages_are_reproducible_and_hold_no_local_path(generator):
    first = generator.render_all(ROOT, str(Path(sys.executable).parent / "ansible-doc"))
    text = "".join(first.values())
    assert str(ROOT) not in text and "/tmp/" not in text
    assert not any(page.count("\r") for page in first.values())


def test_markup_becomes_markdown(generator):
    links = generator.Links(["gate", "alembic_head"], ["verify"], "modules")
    text = generator.markup(
        ["Use O(results) with C(a|b) and I(care); see M(cleanwithsnapshot.release.alembic_head) and M(ansible.builtin.uri).",
         "Second paragraph with U(https://example.com/x) and V(GO)."], links)
    assert text == ("Use <code>results</code> with <code>a&#124;b</code> and *care*; see "
                    "[cleanwithsnapshot.release.alembic\\_head](alembic_head.md) and <code>ansible.builtin.uri</code>."
                    "<br>Second paragraph with <https://example.com/x> and <code>GO</code>.")


def test_option_table_flattens_suboptions(generator):
    links = generator.Links([], [], "modules")
    rows = generator.option_rows({
        "waivers": {"type": "list", "elements": "dict", "description": "Accepted risks.", "default": [],
                    "suboptions": {"criterion": {"type": "str", "required": True, "description": "The id."}}},
        "mode": {"type": "str", "choices": ["a", "b"], "default": "", "description": "A | B."},
    }, links)
    assert rows[0] == "| <code>mode</code> | str | choices: <code>a</code>, <code>b</code><br>default: <code>\"\"</code> | A \\| B. |"
    assert rows[1].startswith("| <code>waivers</code> | list / elements=dict | default: <code>[]</code> |")
    assert rows[2] == "| <code>waivers[].criterion</code> | str | **required** | The id. |"

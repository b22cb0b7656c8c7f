"""The labs as nbgrader assignments: sources and releases in sync, no leaks, clean files.

What grading each lab gives (solution = full marks, untouched release = 0, half-done in
between) is in tests/test_grading.py (the kit's sandboxed `grade`, as instructors run it)
and, through nbgrader's own `nbgrader autograde`, in tests/test_nbgrader_tools.py.
"""
import ast
import json
import shutil

import nbformat
import pytest
from editions import leaks
from IPython.core.inputtransformer2 import TransformerManager

from autograder import ROOT, labs
from autograder import solution_notebook as source
from autograder.release import release
from autograder.stamp import CELL_ID, STAMPED, cell_id
from autograder.vocabulary import MARKERS

LABS = labs()
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def released(lab: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "notebooks" / lab / f"{lab}.ipynb", as_version=4)


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def test_there_are_labs():
    assert LABS, "no solutions/<lab>/<lab>.ipynb found"


# ---------------------------------------------------------------- structure of the sources

@pytest.mark.parametrize("lab", LABS)
def test_source_has_graded_answers_tests_and_hidden_tests(lab):
    nb = source(lab)
    metas = [nbgrader_meta(cell) for cell in nb.cells if nbgrader_meta(cell)]
    ids = [m["grade_id"] for m in metas]
    assert len(ids) == len(set(ids)), f"duplicate grade ids in {lab}: {ids}"
    answers = [m for m in metas if m.get("solution")]
    tests = [m for m in metas if m.get("grade")]
    assert answers and tests
    assert all(m["locked"] and m["points"] > 0 for m in tests)
    assert any("### BEGIN HIDDEN TESTS" in cell.source for cell in nb.cells if nbgrader_meta(cell).get("grade"))


@pytest.mark.parametrize("lab", LABS)
def test_every_solution_region_says_what_to_write(lab):
    """The student sees the comment block above each solution: it must hold a `# TODO:` line."""
    for cell in source(lab).cells:
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            if line.strip() == "### BEGIN SOLUTION":
                block = []
                for above in reversed(lines[:i]):
                    if not above.strip().startswith("#"):
                        break
                    block.append(above.strip())
                assert any(c.startswith("# TODO:") for c in block), \
                    f"{lab}: no '# TODO: ...' comment right above the solution in\n{cell.source}"


def raw_asserts(code: str) -> list:
    """The lines of ``code`` with an ``assert`` statement or a ``raise AssertionError``."""
    tree = ast.parse(TransformerManager().transform_cell(code))
    found = []
    for node in ast.walk(tree):
        raised = node.exc.func if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) else (
            node.exc if isinstance(node, ast.Raise) else None)
        if isinstance(node, ast.Assert) or (isinstance(raised, ast.Name) and raised.id == "AssertionError"):
            found.append(f"line {node.lineno}: {ast.get_source_segment(code, node) or ast.unparse(node)}")
    return found


@pytest.mark.parametrize("lab", LABS)
def test_graded_tests_speak_labkit_checks_not_raw_asserts(lab):
    """Every graded test cell, visible and hidden part (the markers are comments), fails through
    labkit.checks: a message with what was expected, what was got and a hint, never a bare assert."""
    offending = {nbgrader_meta(c)["grade_id"]: raw_asserts(c.source) for c in source(lab).cells
                 if c.cell_type == "code" and nbgrader_meta(c).get("grade")}
    offending = {grade_id: found for grade_id, found in offending.items() if found}
    assert not offending, f"{lab}: use labkit.checks (check_equal, check_raises, ...) instead of: {offending}"


def test_raw_asserts_are_found_in_any_form():
    code = ("x = 1\nassert x == 1, 'no'\nif x:\n    raise AssertionError('no')\n"
            "try:\n    pass\nexcept ValueError:\n    raise AssertionError\n# assert in a comment is fine\n")
    assert [f.split(":")[0] for f in raw_asserts(code)] == ["line 2", "line 4", "line 8"]
    assert raw_asserts("from labkit.checks import check_raises\ncheck_raises(int, ValueError, 'x')") == []


# ---------------------------------------------------------------- release: in sync, no leaks, clean

def test_notebooks_are_what_nbgrader_generates_now(tmp_path):
    """What `make release` would write now (into a copy: the test changes nothing in the checkout)."""
    shutil.copytree(ROOT / "solutions", tmp_path / "solutions")
    tmp_path = tmp_path / "release"
    release(LABS, release_dir=tmp_path, solutions=tmp_path.parent / "solutions")
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(ROOT / "notebooks") for p in (ROOT / "notebooks").rglob("*")
                       if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    assert generated == committed, "notebooks/ is out of date: run `make release` and commit the result"
    for relative in generated:
        assert (tmp_path / relative).read_bytes() == (ROOT / "notebooks" / relative).read_bytes(), \
            f"notebooks/{relative} differs from what nbgrader generates: run `make release`"


def test_no_solution_or_hidden_test_appears_in_the_release():
    """The token-sequence search of tests/editions.py (reformatted code is found too) over notebooks/."""
    found = leaks(ROOT / "notebooks")
    assert not found, f"notebooks/ shows pieces of solutions or hidden tests: {found[:5]}"
    for path in (ROOT / "notebooks").rglob("*.ipynb"):
        assert not any(marker in path.read_text() for marker in MARKERS), path


NOTEBOOKS = sorted((ROOT / "solutions").rglob("*.ipynb")) + sorted((ROOT / "notebooks").rglob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebooks_have_stable_unique_cell_ids(path):
    """nbformat 4.5: JupyterLab keeps the file as it is on save.  The cells that `make release` makes
    anew (header, setup, hand-in, check) have fixed ids, so a release is the same every time."""
    nb = json.loads(path.read_text())
    assert (nb["nbformat"], nb["nbformat_minor"]) == (4, 5), f"{path.name} is nbformat {nb['nbformat']}." \
        f"{nb['nbformat_minor']}: run `make release` (it upgrades the source once)"
    ids = [cell.get("id") for cell in nb["cells"]]
    assert all(isinstance(i, str) and CELL_ID.match(i) for i in ids), ids
    assert len(ids) == len(set(ids)), f"repeated cell ids in {path.name}: {sorted(i for i in ids if ids.count(i) > 1)}"
    for cell in nb["cells"]:
        for tag in set(cell["metadata"].get("tags", [])) & set(STAMPED):
            assert cell["id"] == cell_id(tag) == tag.replace(":", "-"), (tag, cell["id"])


def test_stamping_upgrades_a_44_notebook_once_and_then_keeps_its_ids():
    from autograder.settings import load
    from autograder.stamp import stamp

    cells = [nbformat.v4.new_markdown_cell("# A lab"), nbformat.v4.new_code_cell("import labkit as lk"),
             nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("x = 1"),  # same source twice
             nbformat.v4.new_code_cell("check(x)", metadata={"nbgrader": {"grade": True, "grade_id": "test_x",
                                                                         "locked": True, "points": 1}})]
    old = nbformat.v4.new_notebook(cells=cells)
    old.nbformat_minor = 4
    for cell in old.cells:
        del cell["id"]
    first = stamp(nbformat.from_dict(json.loads(json.dumps(old))), "07_tiny", load())
    ids = [c.id for c in first.cells]
    assert (first.nbformat, first.nbformat_minor) == (4, 5) and len(set(ids)) == len(ids)
    assert ids[0] == "labkit-header" and ids[2] == "labkit-setup" and ids[-2:] == ["labkit-submit", "labkit-check"]
    assert "test_x" in ids  # a graded cell is named after its grade id
    again = stamp(nbformat.reads(nbformat.writes(first), as_version=4), "07_tiny", load())
    assert nbformat.writes(again) == nbformat.writes(first)
    fresh = stamp(nbformat.from_dict(json.loads(json.dumps(old))), "07_tiny", load())
    assert [c.id for c in fresh.cells] == ids  # the upgrade itself gives the same ids every time


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebooks_in_git_carry_no_outputs_or_personal_metadata(path):
    nb = json.loads(path.read_text())
    assert set(nb["metadata"]) <= {"kernelspec", "language_info"}, nb["metadata"].keys()
    assert nb["metadata"]["kernelspec"] == KERNELSPEC
    for cell in nb["cells"]:
        assert set(cell["metadata"]) <= {"nbgrader", "deletable", "editable", "tags"}, cell["metadata"]
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, \
                f"{path.name} has outputs: clear them (Kernel > Restart and Clear Outputs) before committing"

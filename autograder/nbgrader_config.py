"""The kit's shared nbgrader settings: used by `python -m autograder release` (`make release`), loaded first
by every course folder's nbgrader_config.py (the repository's own at its root; see autograder/nbgrader_course.py).

Layout (autograder.nbgrader_course.layout): instructor sources in solutions/<lab>/<lab>.ipynb, student
copies generated into notebooks/<lab>/ (nbgrader's "source" and "release" steps); the per-cell time limit
is the course settings' (course.toml, [limits] cell_timeout).  A course folder's own file then sets its
layout, its limits, the sandboxed autograde and the redacted feedback.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # nbgrader loads this file from autograder/, where `autograder` is not importable
    sys.path.insert(0, str(ROOT))

from autograder.nbgrader_course import layout  # noqa: E402

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

# The kit's course folder (the repository root): sources in solutions/, releases in notebooks/, and the
# course's per-cell limit (cells train real models), as when the autograder grades.
c.merge(layout(ROOT))

# What a student sees in place of a solution: the cell's own "# TODO: ..." comment
# (kept, it stands above the BEGIN SOLUTION marker) says what to write, then a line
# that fails loudly until it is replaced.
c.ClearSolutions.code_stub = {"python": "raise NotImplementedError()  # replace this line with your code"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

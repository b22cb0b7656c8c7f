"""nbgrader configuration of the course: used by `python -m autograder` and `make release`.

Layout: instructor sources in solutions/<lab>/<lab>.ipynb, student copies
generated into notebooks/<lab>/ (nbgrader's "source" and "release" steps).
"""
from pathlib import Path

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.root = str(Path(__file__).resolve().parent.parent)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"

# What a student sees in place of a solution: the cell's own "# TODO: ..." comment
# (kept, it stands above the BEGIN SOLUTION marker) says what to write, then a line
# that fails loudly until it is replaced.
c.ClearSolutions.code_stub = {"python": "raise NotImplementedError()  # replace this line with your code"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Labs train real models: allow a slow laptop several minutes per cell.
c.Execute.timeout = 600

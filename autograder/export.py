"""`python -m autograder export`: every lab's scores in one CSV for the LMS.

``--lms canvas`` or ``moodle`` (the CLI's default: course.toml's ``[submission] lms``) writes the file that
LMS's gradebook import takes as it is (autograder/lms.py, docs/lms.md): its identity columns first, as the
roster export that ``collect --lms ... --roster`` read has them, then one column per lab titled by
course.toml's ``[gradebook]``; Canvas gets its "Points Possible" row, Moodle no extra row; no total column
(an LMS would take it for one more assignment).  ``--lms none`` keeps the generic table, for a spreadsheet::

    student,01_xor,02_softmax,...,total
    Points Possible,20,15,...,70
    alice,18,15,...,63

Scores come from the gradebook, so manual grades count.  An empty cell means no
graded submission of that lab.  Labs not yet in the gradebook are left out.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from autograder import use_tool_path
from autograder.course import Course
from autograder.vocabulary import number


def table(course: Course) -> tuple:
    """(lab ids, {lab: max score}, {student: {lab: score}}) from the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    labs, maximum, scores = [], {}, {}
    with Gradebook(course.db_url) as gb:
        for lab in course.labs():
            try:
                assignment = gb.find_assignment(lab)
            except MissingEntry:
                continue
            labs.append(lab)
            maximum[lab] = assignment.max_score
            for submission in assignment.submissions:
                scores.setdefault(submission.student.id, {})[lab] = submission.score
    return labs, maximum, scores


def export(course: Course | None = None, to: str | None = None, say=print, lms: str = "none") -> Path:
    use_tool_path()
    course = course or Course()
    labs, maximum, scores = table(course)
    if not labs:
        raise SystemExit(f"nothing to export: no lab has been graded in {course.db_shown}")
    left_out, notes = [], []
    if lms == "none":
        rows = [["student", *labs, "total"],
                ["Points Possible", *(number(maximum[lab]) for lab in labs), number(sum(maximum.values()))]]
        for student in sorted(scores):
            row = scores[student]
            rows.append([student, *(number(row[lab]) if lab in row else "" for lab in labs),
                         number(sum(row.values()))])
    else:
        from autograder.lms import export_rows

        rows, left_out, notes = export_rows(course, lms, labs, maximum, scores, number)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path = Path(to) if to else course.root / "grades" / "all_labs.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    exported = len(scores) - len(left_out)
    say(f"exported {exported} student(s) x {len(labs)} lab(s) to {path}" + (f" for {lms}" if lms != "none" else ""))
    for note in notes:
        say(f"note: {note}")
    if left_out:
        say(f"NOT EXPORTED: {len(left_out)} student(s) with grades but not in the {lms} roster: "
            f"{', '.join(left_out)}. They were collected without --lms {lms} (or the roster lacks them): collect "
            f"their files again with --lms {lms} and a roster that has them, or enter these grades by hand")
    if lms != "none":
        from autograder.lms import import_steps

        say(import_steps(lms, path, course))
    return path

"""`python -m autograder export`: every lab's scores in one CSV for the LMS.

Layout (one row per student, one column per lab, as LMS gradebook imports expect)::

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


def export(course: Course | None = None, to: str | None = None, say=print) -> Path:
    use_tool_path()
    course = course or Course()
    labs, maximum, scores = table(course)
    if not labs:
        raise SystemExit(f"nothing to export: no lab has been graded in {course.db_url}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *labs, "total"])
    writer.writerow(["Points Possible", *(number(maximum[lab]) for lab in labs), number(sum(maximum.values()))])
    for student in sorted(scores):
        row = scores[student]
        writer.writerow([student, *(number(row[lab]) if lab in row else "" for lab in labs),
                         number(sum(row.values()))])
    path = Path(to) if to else course.root / "grades" / "all_labs.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue())
    say(f"exported {len(scores)} student(s) x {len(labs)} lab(s) to {path}")
    return path

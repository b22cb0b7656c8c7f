"""The instructor's grading pipeline: collect, sandboxed parallel grade, feedback, export.

Most of it runs on a tiny lab built in code (tests/grading_corpus.py) and an LMS
zip of bad submissions, graded with 2 workers and small limits; then the real
labs: every solution, and Lab 3's release and a half-done copy, end to end.
"""
import csv
import json
import re
import socket
import threading
from datetime import UTC, datetime
from types import SimpleNamespace

import nbformat
import pytest
from editions import half_done
from grading_corpus import (
    CANARY,
    CORPUS_LIMITS,
    EXPECTED,
    LAB,
    corpus,
    make_zip,
    quiet,
    rows,
    source_notebook,
    student_notebook,
    tiny_course,
)

from autograder import ROOT, labs, solution_notebook
from autograder.collect import Entry, collect, lab_mentions, map_entry
from autograder.course import Course
from autograder.export import export
from autograder.feedback import feedback, secret_lines
from autograder.grade import grade
from autograder.settings import load as load_settings
from autograder.worker import read_submission


class Listener:
    """A TCP server on 127.0.0.1 that counts connections: a sandboxed cell must not reach it."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


# ---------------------------------------------------------------- fast checks, no kernels

def test_the_sandbox_works_here(sandbox):
    result = sandbox
    assert result["network"].startswith("blocked"), result
    assert result["root_writable"] is False and result["processes_visible"] <= 3, result
    assert result["uid"] == 0 and result["capabilities"] == "0000000000000000", result  # root of nothing
    assert result["omp_threads"] == "1" and result["gpus_visible"] is False, result


@pytest.mark.parametrize("name, student, problem", [
    ("s1234567_07_tiny.ipynb", "s1234567", None),
    ("alice_lab7 (1).ipynb", "alice", None),
    ("bob/whatever.ipynb", "bob", None),
    ("Untitled.ipynb", None, "no student id"),
    ("07_tiny.ipynb", None, "no student id"),
    ("carol_07_tiny.pdf", None, "not a notebook file"),
    ("dave_03_mlp.ipynb", None, "the name says 03_mlp"),
    ("__MACOSX/._erin_07_tiny.ipynb", None, None),
])
def test_collect_maps_names_to_students(name, student, problem):
    labs_ = ["03_mlp", LAB]
    got_student, got_problem = map_entry(Entry(name, None, 0, None), LAB, labs_, None, None, load_settings())
    assert got_student == student
    assert (got_problem is None) if problem is None else problem in got_problem


def test_collect_pattern_and_roster():
    entry = Entry("1234567-Jane Doe-lab.ipynb", None, 0, None)
    pattern = re.compile(r"^(?P<student>\d{7})-")
    assert map_entry(entry, LAB, [LAB], pattern, None, load_settings()) == ("1234567", None)
    student, problem = map_entry(entry, LAB, [LAB], pattern, {"7654321"}, load_settings())
    assert student is None and "not on the roster" in problem
    assert lab_mentions("my_lab3_final", ["03_mlp", "07_tiny"]) == {"03_mlp"}


@pytest.mark.parametrize("data, problem", [
    (b"", "empty"), (b"\x89PNG\r\n\x1a\n\x00\x00", "not text"), (b"{not json", "not valid JSON"),
    (b'{"cells": 3}', "without a list of cells"), (b"[1, 2]", "without a list of cells"),
])
def test_files_that_are_not_notebooks_are_refused_with_a_reason(tmp_path, data, problem):
    path = tmp_path / "x.ipynb"
    path.write_bytes(data)
    nb, why = read_submission(path, {}, 2**20)
    assert nb is None and problem in why


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "x.ipynb"
    path.write_bytes(nbformat.writes(student_notebook()).encode() + b" " * 2**20)
    nb, why = read_submission(path, {}, 2**20)
    assert nb is None and "too large" in why and "1 MB" in why


def test_broken_grading_metadata_is_dropped_not_trusted(tmp_path):
    data = json.loads(nbformat.writes(student_notebook()))
    data["metadata"]["kernelspec"] = "not a dict"
    data["cells"][2]["metadata"]["nbgrader"] = "not a dict"
    data["cells"][3]["metadata"]["nbgrader"]["grade_id"] = 5
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(data))
    nb, why = read_submission(path, {}, 2**20)
    assert why is None and "kernelspec" not in nb.metadata
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells][2:] == \
        [None, None, "scale", "test_scale", "test_scale_allclose"]


def test_secret_lines_are_the_hidden_tests_only():
    secrets = secret_lines(source_notebook())
    assert any("hidden-add-check" in line for line in secrets)
    assert not any("check_equal(add(1, 2), 3" in line for line in secrets)  # visible to students
    for lab in labs():
        nb = solution_notebook(lab)
        assert secret_lines(nb), f"{lab} has hidden tests, so it must have secret lines"


# ---------------------------------------------------------------- the corpus, graded with 2 workers

@pytest.fixture(scope="module")
def graded_corpus(tmp_path_factory, sandbox):
    root = tmp_path_factory.mktemp("course")
    course = tiny_course(root)
    listener = Listener()
    files = corpus(root, listener.port, str(course.submitted("control-full", LAB) / f"{LAB}.ipynb"),
                   str(root / "gradebook.db"))
    download = make_zip(root.parent / f"{root.name}-download.zip", files)
    collected = collect(LAB, download, course, max_bytes=2 * 2**20, say=quiet)
    with pytest.MonkeyPatch.context() as patch:  # the grader's own environment must not reach a sandbox
        patch.setenv(CANARY, "the grader's secret")
        said = []
        records = grade(LAB, course, workers=2, limits=CORPUS_LIMITS, sandbox="full",
                        say=lambda line: (said.append(line), print(line)))
    return SimpleNamespace(root=root, course=course, download=download, collected=collected, records=records,
                           listener=listener, csv=rows(course.grades_csv(LAB)), said=said)


def test_collect_refuses_what_it_cannot_map_and_keeps_every_submission(graded_corpus):
    by_file = {row["file"]: row for row in graded_corpus.collected}
    assert by_file["Untitled.ipynb"]["action"] == "refused"
    assert "no student id" in by_file["Untitled.ipynb"]["detail"]
    assert by_file["resubmitted_07_tiny.ipynb"]["action"] == "collected"
    assert by_file["resubmitted_07_tiny (1).ipynb"]["action"] == "replaced"
    course = graded_corpus.course
    assert len(list((course.collected(LAB) / "resubmitted").iterdir())) == 2, "both submissions are kept"
    assert course.submission("resubmitted", LAB)["file"] == "resubmitted_07_tiny (1).ipynb", "the latest wins"
    assert course.submission("too-large", LAB)["too_large"] is True
    assert not (course.submitted("too-large", LAB) / f"{LAB}.ipynb").exists(), "too large: recorded, not copied"
    log = list(csv.DictReader(open(course.collected(LAB) / "collect-log.csv")))
    assert {row["file"] for row in log} >= set(by_file)


def test_collecting_the_same_download_again_changes_nothing(graded_corpus):
    before = {s: graded_corpus.course.submission(s, LAB)["sha256"] for s in graded_corpus.course.students(LAB)}
    again = collect(LAB, graded_corpus.download, graded_corpus.course, max_bytes=2 * 2**20, say=quiet)
    assert {row["action"] for row in again} <= {"skipped", "refused"}
    after = {s: graded_corpus.course.submission(s, LAB)["sha256"] for s in graded_corpus.course.students(LAB)}
    assert after == before


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_each_bad_submission_gets_its_score_and_a_clear_reason(graded_corpus, student):
    row = graded_corpus.csv[student]
    outcomes = EXPECTED[student] if isinstance(EXPECTED[student], list) else [EXPECTED[student]]
    got = (row["status"], float(row["score"]), row["max_score"])
    matching = [(status, score, words) for status, score, words in outcomes if got == (status, score, "5")]
    assert matching, f"{student}: got {got}, expected one of {[o[:2] for o in outcomes]}; row {row}"
    for word in matching[0][2]:
        assert word.lower() in row["reason"].lower(), f"{student}: {word!r} not in the reason {row['reason']!r}"


def test_the_batch_graded_every_mapped_student(graded_corpus):
    assert set(graded_corpus.csv) == set(EXPECTED)
    assert list(graded_corpus.csv) == sorted(EXPECTED), "one row per student, sorted"


def test_the_progress_counts_first_runs_and_second_runs_apart(graded_corpus):
    """Crashed submissions are graded a second time, alone: that count never runs past its total."""
    first = [tuple(map(int, m.groups())) for line in graded_corpus.said if (m := re.match(r"\[(\d+)/(\d+)\]", line))]
    again = [tuple(map(int, m.groups())) for line in graded_corpus.said
             if (m := re.match(r"\[again (\d+)/(\d+)\]", line))]
    assert [n for n, _ in first] == list(range(1, len(first) + 1)) and {t for _, t in first} == {len(first)}
    assert again, "the corpus has crashed submissions (kernel-death): they are graded again"
    assert [n for n, _ in again] == list(range(1, len(again) + 1)) and {t for _, t in again} == {len(again)}


def outputs_text(course, student):
    nb = nbformat.read(course.autograded(student, LAB) / f"{LAB}.ipynb", as_version=4)
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_a_student_cell_cannot_read_or_write_outside_its_scratch_folder(graded_corpus):
    root, text = graded_corpus.root, outputs_text(graded_corpus.course, "snoop")
    assert "LEAK" not in text, text
    for target in ("solutions/07_tiny/07_tiny.ipynb", "gradebook.db", "submitted/control-full", ".autograder/labs",
                   "/etc/shadow", "/root/.bashrc"):
        assert re.search(rf"blocked read \S*{re.escape(target)}", text), f"no 'blocked read' for {target}:\n{text}"
    # every process it can see (the sandbox's PID 1 and the kernel) was searched for the grader's environment
    assert re.search(r"^clean environ 1$", text, re.M) and re.search(r"^clean environ 2$", text, re.M), text
    assert text.count("blocked write") == 4 and "blocked glob" in text
    assert "scratch: ['.config', '07_tiny.ipynb']" in text, "the scratch folder: the submission and the lab's files"
    assert not (root / "pwned.txt").exists() and not (root / "submitted" / "pwned.txt").exists()
    assert not list(root.rglob("scratch-ok.txt")), "the scratch folder vanishes with the sandbox"


def test_a_student_cell_cannot_open_a_network_connection(graded_corpus):
    text = outputs_text(graded_corpus.course, "network")
    assert "LEAK" not in text and text.count("blocked connect") == 2 and "blocked http" in text, text
    assert graded_corpus.listener.accepted == 0


def test_the_gradebook_holds_the_scores_of_the_csv(graded_corpus):
    from nbgrader.api import Gradebook

    with Gradebook(graded_corpus.course.db_url) as gb:
        for student, row in graded_corpus.csv.items():
            assert gb.find_submission(LAB, student).score == float(row["score"]), student
        # the submission time is kept: the zip entry's time of the latest file (local time, stored in UTC)
        latest = datetime(2025, 3, 1, 12, 30).astimezone(UTC).replace(tzinfo=None)
        assert gb.find_submission(LAB, "resubmitted").timestamp == latest


def test_feedback_shows_each_test_result_but_never_a_hidden_test(graded_corpus):
    paths = feedback(LAB, graded_corpus.course, say=quiet)
    assert {p.parent.parent.name for p in paths} == set(EXPECTED)
    secrets = secret_lines(source_notebook())
    for path in paths:
        html = path.read_text()
        for line in secrets:
            assert line not in html, f"{path}: hidden test line leaked: {line}"
        for marker in ("BEGIN HIDDEN", "hidden-add-check", "hidden-scale-check", "hidden-allclose-check"):
            assert marker not in html, f"{path} shows {marker!r}"
        if path.parent.parent.name not in ("not-json", "empty-file", "too-large"):
            for test in ("test_add", "test_scale", "test_scale_allclose"):
                assert test in html, f"{path}: no result for {test}"
    hidden_only = (graded_corpus.course.feedback("hidden-only", LAB) / f"{LAB}.html").read_text()
    assert "failed a hidden test (0/2 points)" in hidden_only and "add(-5, 5)" not in hidden_only
    partial = (graded_corpus.course.feedback("control-partial", LAB) / f"{LAB}.html").read_text()
    assert "passed (2/2 points)" in partial and "NotImplementedError" in partial
    assert "too large" in (graded_corpus.course.feedback("too-large", LAB) / f"{LAB}.html").read_text()


def test_grade_again_is_idempotent_resumes_and_keeps_manual_grades(graded_corpus):
    from nbgrader.api import Gradebook

    course = graded_corpus.course
    csv_before = course.grades_csv(LAB).read_text()
    assert grade(LAB, course, workers=2, limits=CORPUS_LIMITS, sandbox="full", say=quiet) == {}
    assert course.grades_csv(LAB).read_text() == csv_before, "nothing changed, nothing graded"

    with Gradebook(course.db_url) as gb:  # a TA's manual grade
        gb.find_grade("test_scale", LAB, LAB, "control-partial").manual_score = 1.5
        gb.db.commit()
    late = {f"late-{i}_07_tiny.ipynb": (nbformat.writes(student_notebook()).encode(),
                                        datetime(2025, 3, 2, 9, i)) for i in range(2)}
    late["control-partial_07_tiny.ipynb"] = (nbformat.writes(student_notebook(add="wrong", scale=None)).encode(),
                                             datetime(2025, 3, 2, 10, 0))
    collect(LAB, make_zip(graded_corpus.root.parent / "late.zip", late), course, say=quiet)
    first = grade(LAB, course, workers=1, limits=CORPUS_LIMITS, sandbox="full", limit=1, say=quiet)
    assert len(first) == 1, "--limit 1: an interrupted run"
    second = grade(LAB, course, workers=2, limits=CORPUS_LIMITS, sandbox="full", say=quiet)
    assert set(first) | set(second) == {"late-0", "late-1", "control-partial"} and not set(first) & set(second)
    after = rows(course.grades_csv(LAB))
    assert after["late-0"]["score"] == after["late-1"]["score"] == "5"
    partial = after["control-partial"]
    assert float(partial["score"]) == 1.5 and partial["reason"].startswith("includes manual grades"), partial
    unchanged = {s: r for s, r in rows(course.grades_csv(LAB)).items() if s not in second and s not in first}
    assert unchanged == {s: r for s, r in graded_corpus.csv.items() if s != "control-partial"}


def test_export_puts_every_lab_in_one_csv(graded_corpus):
    path = export(graded_corpus.course, say=quiet)
    table = list(csv.reader(open(path)))
    assert table[0] == ["student", LAB, "total"] and table[1] == ["Points Possible", "5", "5"]
    scores = {row[0]: row[1] for row in table[2:]}
    assert scores["control-full"] == "5" and scores["too-large"] == "0"


# ---------------------------------------------------------------- the real labs

@pytest.fixture(scope="module")
def real_labs(tmp_path_factory, sandbox):
    root = tmp_path_factory.mktemp("real-course")
    course = Course(root)
    download = root.parent / f"{root.name}-download"
    out = {}
    for lab in labs():
        folder = download / lab
        submissions = {"solution": solution_notebook(lab), "half": half_done(lab),
                       "release": nbformat.read(ROOT / "notebooks" / lab / f"{lab}.ipynb", as_version=4)}
        for student, nb in submissions.items():
            (folder / student).mkdir(parents=True)
            nbformat.write(nb, folder / student / f"{lab}.ipynb")
        collect(lab, folder, course, say=quiet)
        grade(lab, course, workers=2, sandbox="full", say=print)
        feedback(lab, course, say=quiet)
        out[lab] = rows(course.grades_csv(lab))
    return SimpleNamespace(course=course, csv=out)


@pytest.mark.parametrize("lab", labs())
def test_every_solution_gets_full_marks_in_the_sandbox(real_labs, lab):
    row = real_labs.csv[lab]["solution"]
    assert row["status"] == "graded" and row["score"] == row["max_score"], row
    assert "changed" not in row["reason"], f"tampering reported for the instructor's own solution: {row}"
    record = real_labs.course.record("solution", lab)
    assert record["tests"] and all(t["passed"] for t in record["tests"]), record["tests"]
    graded = nbformat.read(real_labs.course.autograded("solution", lab) / f"{lab}.ipynb", as_version=4)
    errors = [(c.metadata.get("nbgrader", {}).get("grade_id"), o.get("ename"), o.get("evalue", "")[:300])
              for c in graded.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == [], f"the {lab} solution raised errors when graded: {errors}"


@pytest.mark.parametrize("lab", labs())
def test_every_untouched_release_scores_zero_and_passes_no_test(real_labs, lab):
    row = real_labs.csv[lab]["release"]
    assert row["status"] == "graded" and row["score"] == "0", row
    passed = [t["name"] for t in real_labs.course.record("release", lab)["tests"] if t["score"]]
    assert not passed, f"these tests pass without any student code: {passed}"


@pytest.mark.parametrize("lab", labs())
def test_every_half_done_copy_gets_partial_credit(real_labs, lab):
    half = real_labs.csv[lab]["half"]
    assert half["status"] == "graded" and 0 < float(half["score"]) < float(half["max_score"]), half
    assert "NotImplementedError" in half["reason"]


@pytest.mark.parametrize("lab", labs())
def test_real_feedback_never_shows_hidden_tests(real_labs, lab):
    secrets = secret_lines(solution_notebook(lab))
    for path in (real_labs.course.root / "feedback").glob(f"*/{lab}/{lab}.html"):
        html = path.read_text()
        leaked = [line for line in secrets if line in html]
        assert not leaked, f"{path} shows hidden test lines: {leaked[:3]}"
        record = json.loads((real_labs.course.records(lab) / f"{path.parent.parent.name}.json").read_text())
        for test in record["tests"]:
            assert test["name"] in html


WORKER_PHASES = ["checks", "course_folder", "sandbox_setup", "nbgrader_before", "kernel_start", "harness", "notebook",
                 "kernel_stop", "nbgrader_after", "sandbox_cleanup", "results", "worker_other"]


def test_each_result_says_where_its_time_went_phase_by_phase(graded_corpus):
    """Each record carries the worker's per-phase seconds (bench/grading.py --phases prints them): every phase
    of a notebook that ran, none negative, adding up to the worker's time on the job, and a runaway cell's time
    limit counted in the notebook's own phase."""
    records = graded_corpus.records
    for student in ("control-full", "infinite-loop"):
        record = records[student]
        phases = record["phases"]
        assert set(WORKER_PHASES) <= set(phases), (student, phases)
        assert all(value >= 0 for value in phases.values()), phases
        assert phases["merge"] >= 0, "the parent's gradebook merge is timed too"
        on_worker = sum(v for k, v in phases.items() if k != "merge")
        # the phases are laps of one clock in the worker; the parent's wall time adds only the JSON round trip
        assert on_worker <= record["wall_seconds"] + 0.1, (on_worker, record["wall_seconds"], phases)
        assert on_worker >= 0.9 * record["wall_seconds"], (on_worker, record["wall_seconds"], phases)
        cells = record["cells"]
        assert cells and all(isinstance(index, int) and seconds >= 0 for index, _label, seconds in cells)
        assert sum(seconds for *_, seconds in cells) <= phases["notebook"] + 0.1
    runaway = records["infinite-loop"]
    assert runaway["status"] == "timeout"
    assert runaway["phases"]["notebook"] >= CORPUS_LIMITS.cell_timeout, runaway["phases"]
    assert max(seconds for *_, seconds in runaway["cells"]) >= CORPUS_LIMITS.cell_timeout
    invalid = [r for r in records.values() if r["status"] == "invalid"]
    assert invalid and all("kernel_start" not in r.get("phases", {}) for r in invalid), "no kernel for a non-notebook"


def test_the_phases_split_nbgraders_run_at_the_executions_marks_and_add_up():
    """Phases.split cuts nbgrader's span at the marks SandboxedExecute records; the parts add up to the span,
    and a step that never ended (here a kernel that never became ready) keeps the time up to the next mark."""
    from autograder.worker import Phases

    def split(marks, report=None):
        clock = Phases()
        clock.seconds, clock.spans = {"checks": 0.5, "nbgrader": 10.0, "results": 0.25}, {"nbgrader": (100.0, 110.0)}
        clock.split("nbgrader", marks, report or {})
        return clock

    clock = split({"execute": 101, "kernel_ready": 102, "harness_done": 104, "cells_done": 108,
                   "kernel_stopped": 108.5}, {"started": 101.25})
    assert clock.seconds == {"checks": 0.5, "nbgrader_before": 1, "kernel_start": 1, "harness": 2, "notebook": 4,
                             "kernel_stop": 0.5, "nbgrader_after": 1.5, "results": 0.25}
    assert list(clock.seconds) == ["checks", "nbgrader_before", "kernel_start", "harness", "notebook", "kernel_stop",
                                   "nbgrader_after", "results"], "in the order they happen"
    assert clock.details == {"kernel_start.launch": 0.25}, "a part of kernel_start, not counted twice"
    never_ready = split({"execute": 101, "kernel_stopped": 109})
    assert never_ready.seconds["kernel_start"] == 8 and "harness" not in never_ready.seconds
    assert sum(v for k, v in never_ready.seconds.items() if k not in ("checks", "results")) == 10.0

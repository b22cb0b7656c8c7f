"""Canvas and Moodle, end to end: their downloads and roster exports, built here in their real layouts,
collected, graded (the tiny corpus lab, tests/grading_corpus.py), exported, and the CSV read back the way
each LMS's gradebook import reads it.

The layouts follow the LMSs' own code (docs/lms.md has the sources): Canvas's ContentZipper names the
files of "Download Submissions", its GradebookExporter writes the gradebook export and its
GradebookImporter reads an import; Moodle's mod_assign downloader names the folders of "Download all
submissions", its grading table writes the grading worksheet and gradeimport_csv reads an import.
"""
import csv
import io
import json
import re
import struct
import tomllib
import zipfile
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from conftest import require
from grading_corpus import LAB, source_notebook, student_notebook

from autograder import ROOT
from autograder.collect import collect, entries
from autograder.course import Course
from autograder.export import export
from autograder.isolation import Limits, describe, probe
from autograder.lms import (
    RosterError,
    canvas_sanitized,
    column_title,
    parse_canvas,
    parse_moodle,
    read_canvas_roster,
    read_moodle_worksheet,
)
from autograder.settings import SettingsError, load

CORPUS_LIMITS = Limits(cell_timeout=10, notebook_timeout=120, interrupt_grace=10, memory_mb=1536,
                       tree_memory_mb=2560)
T0 = datetime(2025, 3, 3, 9, 0, 0)


def quiet(*_args, **_kwargs):
    pass


def nb(**answers) -> bytes:
    return nbformat.writes(student_notebook(**answers)).encode()


def write_csv(path: Path, rows: list, bom: bool = False, delimiter: str = ",") -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8"))
    return path


def without_utf8_flag(path: Path) -> Path:
    """Clear the zip's "file names are UTF-8" flag, as zips made by rubyzip (Canvas) and Windows are: the names
    stay UTF-8 bytes, but a reader that trusts the flag decodes them as CP437."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        infos, start = archive.infolist(), archive.start_dir
    for info in infos:
        at = info.header_offset
        flags = struct.unpack_from("<H", data, at + 6)[0]
        struct.pack_into("<H", data, at + 6, flags & ~0x800)
    at = start
    while data[at:at + 4] == b"PK\x01\x02":
        flags = struct.unpack_from("<H", data, at + 8)[0]
        struct.pack_into("<H", data, at + 8, flags & ~0x800)
        name, extra, comment = struct.unpack_from("<HHH", data, at + 28)
        at += 46 + name + extra + comment
    path.write_bytes(bytes(data))
    return path


def make_zip(path: Path, files: dict) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, (data, time) in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=time.timetuple()[:6]), data)
    return path


def course_folder(root: Path, lms: str, title: str, **submission) -> Course:
    """A course folder with the tiny lab (and a second lab, 03_mlp, that nothing hands in) and its own
    course.toml (the kit's, with this LMS and column title)."""
    for lab in (LAB, "03_mlp"):
        (root / "solutions" / lab).mkdir(parents=True)
        nbformat.write(source_notebook(), root / "solutions" / lab / f"{lab}.ipynb")
    data = tomllib.loads((ROOT / "course.toml").read_text())
    data["submission"].update(lms=lms, **submission)
    data["gradebook"] = {LAB: title}
    lines = []
    for table, body in data.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in body.items()]
    (root / "course.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Course(root)


# ---------------------------------------------------------------- Canvas, as Canvas writes it

CANVAS_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Lab 7: Tiny (4101)",
                 "Lab 3: The MLP (4102)", "Assignments Current Score", "Assignments Unposted Current Score",
                 "Assignments Final Score", "Assignments Unposted Final Score", "Current Score",
                 "Unposted Current Score", "Final Score", "Unposted Final Score"]
CANVAS_STUDENTS = [  # sortable name, user id, SIS user id, SIS login id, section
    ("김, 민준", "20001", "s2024001", "minjun.kim", "Section A"),
    ("O'Brien, Seán", "20002", "s2024002", "sobrien", "Section A"),
    ("Smith, Jane Anne", "20003", "", "jsmith", "Section B"),        # no SIS user id: still matched by ID
    ("Student, Test", "20099", "", "", "Section A"),                   # Canvas's Test Student, no submission
]
CANVAS_EXPECTED = {"20001": 5, "20002": 5, "20003": 3}


def canvas_gradebook_export(path: Path, bom=False, delimiter=",") -> Path:
    """Canvas's Grades > Export: the header, the "Manual Posting" row, "    Points Possible", then students."""
    width = len(CANVAS_HEADER)
    rows = [CANVAS_HEADER,
            ["", "", "", "", "", "Manual Posting", ""] + [""] * (width - 7),
            ["    Points Possible", "", "", "", "", "5.00", "10.00"] + ["(read only)"] * (width - 7)]
    for name, user, sis, login, section in CANVAS_STUDENTS:
        rows.append([name, user, sis, login, section, "", "N/A"] + ["0.00"] * (width - 7))
    return write_csv(path, rows, bom=bom, delimiter=delimiter)


def canvas_download(path: Path) -> Path:
    """Canvas's Download Submissions: flat, <sortable name>_[late_]<user id>_<file id>_<file name>, zip times
    the time the zip was made (here: a minute apart, in an order that says nothing about the uploads)."""
    files = {
        "김민준_late_20001_30001_07_tiny.ipynb": (nb(), T0),
        # two files of one submission: the second upload of the same name became 07_tiny-1.ipynb; its file id
        # is higher (the newer), its zip time earlier
        "obrienseán_20002_30010_07_tiny.ipynb": (nb(scale=None), T0.replace(minute=5)),
        "obrienseán_20002_30011_07_tiny-1.ipynb": (nb(), T0.replace(minute=4)),
        "smithjaneanne_20003_30020_s2024003_07_tiny.ipynb": (nb(add="wrong"), T0),
        "smithjaneanne_20003_30021_notes.pdf": (b"%PDF-1.4 not a notebook", T0),
        "ghost_29999_30030_07_tiny.ipynb": (nb(), T0),                  # not in the roster
        "studenttest_20099_30040_03_mlp.ipynb": (nb(), T0),             # another lab's file
    }
    return without_utf8_flag(make_zip(path, files))


def canvas_import(text: str, roster: list, assignments: dict) -> dict:
    """What Canvas's GradebookImporter does with the file: the header must start Student, ID and end its student
    columns with Section; the "Points Possible" row sets points; each row is a student by ID, then SIS User ID,
    then SIS Login ID; a column "<name> (<id>)" is assignment <id>, a plain name the assignment of that name, any
    other column a new assignment.  Returns {scores: {user id: {assignment: score}}, points, new, unknown}."""
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    assert len(header) > 3 and "Student" in header[0] and "ID" in header[1], header
    columns = 3
    if re.search(r"SIS\s+Login\s+ID", header[2]):
        columns += 1
    elif re.search(r"SIS\s+User\s+ID", header[2]) and re.search(r"SIS\s+Login\s+ID", header[3]):
        columns += 2 + bool(re.search(r"Integration\s+ID", header[4])) + bool(re.search(r"Root\s+Account",
                                                                                        header[4]))
    assert "Section" in header[columns - 1], f"Canvas: invalid header row {header}"
    by_id = {a_id: title for title, a_id in assignments.items()}
    targets, new = [], []
    for title in header[columns:]:
        match = re.fullmatch(r"(.*)\s\((\d+)\)", title)
        if match and match[2] in by_id:
            targets.append(by_id[match[2]])
        elif title in assignments:
            targets.append(title)
        else:
            targets.append(title)
            new.append(title)
    by = {key: {person[key]: person["ID"] for person in roster if person[key]}
          for key in ("ID", "SIS User ID", "SIS Login ID")}
    scores, points, unknown = {}, {}, []
    for row in rows[1:]:
        if "Points Possible" in row[0]:
            points = dict(zip(targets, row[columns:], strict=False))
            continue
        cells = dict(zip(header, row, strict=False))
        user = by["ID"].get(row[1]) or by["SIS User ID"].get(cells.get("SIS User ID", "")) or \
            by["SIS Login ID"].get(cells.get("SIS Login ID", ""))
        if user is None:
            unknown.append(row)
            continue
        scores[user] = {t: float(v.replace(",", "."))
                        for t, v in zip(targets, row[columns:], strict=False) if v.strip()}
    return {"scores": scores, "points": points, "new": new, "unknown": unknown}


# ---------------------------------------------------------------- Moodle, as Moodle writes it

WORKSHEET_HEADER = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                    "Grade can be changed", "Last modified (submission)", "File submissions", "Last modified (grade)",
                    "Feedback comments"]
MOODLE_STUDENTS = [  # participant id, full name, email, status
    ("1234567", "김민준", "minjun.kim@example.edu", "Submitted for grading 1 day 2 hours late"),
    ("1234568", "Seán O'Brien", "sean.obrien@example.edu", "Submitted for grading"),
    ("1234569", "Jane Anne Smith", "Jane.Smith@Example.edu", "Submitted for grading"),
    ("1234570", "Nobody Handedin", "nobody@example.edu", "No submission"),
]
MOODLE_EXPECTED = {"minjun.kim@example.edu": 5, "sean.obrien@example.edu": 2, "jane.smith@example.edu": 3}


def moodle_worksheet(path: Path) -> Path:
    """The assignment's Download grading worksheet."""
    rows = [WORKSHEET_HEADER]
    for participant, name, email, status in MOODLE_STUDENTS:
        rows.append([f"Participant {participant}", name, email, status, "", "5.00", "Yes",
                     "Monday, 3 March 2025, 9:00 AM", "07_tiny.ipynb", "-", ""])
    return write_csv(path, rows, bom=True)


def moodle_download(path: Path) -> Path:
    """Download all submissions, in folders (Moodle 4's default): <Full name>_<participant>_assignsubmission_file/."""
    files = {
        "김민준_1234567_assignsubmission_file/07_tiny.ipynb": (nb(), T0),
        # two files in one submission: the newer (by time) is graded, both are kept
        "Seán O'Brien_1234568_assignsubmission_file/07_tiny.ipynb": (nb(), T0.replace(minute=1)),
        "Seán O'Brien_1234568_assignsubmission_file/07_tiny (1).ipynb": (nb(scale=None), T0.replace(minute=30)),
        "Jane Anne Smith_1234569_assignsubmission_file/lab7 final.ipynb": (nb(add="wrong"), T0),
        "Jane Anne Smith_1234569_assignsubmission_onlinetext/onlinetext.html": (b"<p>see my notebook</p>", T0),
        "Ghost Person_1239999_assignsubmission_file/07_tiny.ipynb": (nb(), T0),   # not in the worksheet
    }
    return make_zip(path, files)


def moodle_import(text: str, map_from: str, users: dict) -> dict:
    """What Moodle's gradeimport_csv does: every row's user is found by the mapped column (map to useremail:
    the user's email) or the whole import stops; each other column maps to a grade item; '' or '-' is no
    grade, anything else must be a number."""
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip() for h in rows[0]]
    assert map_from in header, header
    grades = {}
    for row in rows[1:]:
        cells = dict(zip(header, (v.strip() for v in row), strict=False))
        user = users.get(cells[map_from])
        if user is None:
            raise AssertionError(f"Moodle: user mapping error: could not find user with email address "
                                 f"{cells[map_from]!r}: import stopped")
        grades[user] = {}
        for column in header:
            if column == map_from or column in ("Full name", "ID number", "Username"):
                continue
            value = cells[column]
            if value in ("", "-"):
                continue
            grades[user][column] = float(value)  # a non-number stops the import (badgrade)
    return grades


# ---------------------------------------------------------------- fast: names, rosters, settings (no kernels)

@pytest.mark.parametrize("name, expected", [
    ("doejane_12345_67890_lab3.ipynb", ("doejane", False, "12345", 67890, "lab3.ipynb")),
    ("doejane_late_12345_67890_lab3-1.ipynb", ("doejane", True, "12345", 67890, "lab3-1.ipynb")),
    ("김민준_late_20001_30001_07_tiny.ipynb", ("김민준", True, "20001", 30001, "07_tiny.ipynb")),
    ("obrienseán_20002_30011_s2024002_07_tiny (1).ipynb",
     ("obrienseán", False, "20002", 30011, "s2024002_07_tiny (1).ipynb")),
    ("o_brien_20002_30011_x.ipynb", ("o_brien", False, "20002", 30011, "x.ipynb")),
    ("12345_67890_lab3.ipynb", ("", False, "12345", 67890, "lab3.ipynb")),            # anonymous grading
    ("late_12345_67890_lab3.ipynb", ("", True, "12345", 67890, "lab3.ipynb")),
    ("unzipped/doejane_12345_67890_lab3.ipynb", ("doejane", False, "12345", 67890, "lab3.ipynb")),
    ("doejane_12345_67890_ps1.zip/problem1.ipynb", ("doejane", False, "12345", 67890, "ps1.zip")),
    ("s1234567_07_tiny.ipynb", None),
    ("Untitled.ipynb", None),
])
def test_canvas_file_names(name, expected):
    got = parse_canvas(name)
    assert (got and (got["name"], got["late"], got["user"], got["attachment"], got["file"])) == expected or \
        got is expected is None, got


def test_canvas_writes_names_as_the_kit_expects():
    assert canvas_sanitized("Kim, Minjun") == "kimminjun"
    assert canvas_sanitized("김, 민준") == "김민준"
    assert canvas_sanitized("O'Brien, Seán") == "obrienseán"
    assert canvas_sanitized("Agent_007_, James") == "agent007james"  # Canvas takes "_<digits>_" out of names


@pytest.mark.parametrize("path, expected", [
    ("김민준_1234567_assignsubmission_file/07_tiny.ipynb", ("김민준", "1234567", "file", "07_tiny.ipynb")),
    ("Seán O'Brien_1234568_assignsubmission_file_/lab 7.ipynb", ("Seán O'Brien", "1234568", "file", "lab 7.ipynb")),
    ("Jane Anne Smith_1234569_assignsubmission_file_07_tiny.ipynb",
     ("Jane Anne Smith", "1234569", "file", "07_tiny.ipynb")),                               # not in folders
    ("Participant_1234570_assignsubmission_file/sub/07_tiny.ipynb",
     ("Participant", "1234570", "file", "sub/07_tiny.ipynb")),                                # blind marking
    ("COURSE-Lab 7-42/Jane Anne Smith_1234569_assignsubmission_file/07_tiny.ipynb",
     ("Jane Anne Smith", "1234569", "file", "07_tiny.ipynb")),                                # unpacked in a folder
    ("Jane Anne Smith_1234569_assignsubmission_onlinetext/onlinetext.html",
     ("Jane Anne Smith", "1234569", "onlinetext", "onlinetext.html")),
    ("Jane Anne Smith/07_tiny.ipynb", None),
])
def test_moodle_paths(path, expected):
    got = parse_moodle(path)
    assert (got and (got["name"], got["participant"], got["plugin"], got["file"])) == expected or \
        got is expected is None, got


def test_the_canvas_roster_is_read_as_canvas_writes_it(tmp_path):
    for bom, delimiter in [(False, ","), (True, ";")]:
        roster = read_canvas_roster(canvas_gradebook_export(tmp_path / f"g{delimiter}.csv", bom, delimiter))
        assert roster["columns"] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
        assert roster["assignments"] == ["Lab 7: Tiny (4101)", "Lab 3: The MLP (4102)"], "totals are not labs"
        assert sorted(roster["students"]) == ["20001", "20002", "20003", "20099"], "no Points Possible row"
        assert roster["students"]["20001"]["Student"] == "김, 민준"
    ta_export = write_csv(tmp_path / "ta.csv", [["Student", "ID", "SIS Login ID", "Section", "Lab 7: Tiny (4101)"],
                                                ["    Points Possible", "", "", "", "5.00"],
                                                ["Doe, Jane", "123", "jdoe", "S1", ""]])
    assert read_canvas_roster(ta_export)["columns"] == ["Student", "ID", "SIS Login ID", "Section"]


def test_a_roster_that_is_not_the_lms_export_is_refused_with_what_to_download(tmp_path):
    wrong = write_csv(tmp_path / "names.csv", [["name", "email"], ["Jane", "j@x.edu"]])
    with pytest.raises(RosterError, match=r"not Canvas's gradebook export: expected .*Student,ID,SIS User ID.*"
                                          r"Grades > Export"):
        read_canvas_roster(wrong)
    with pytest.raises(RosterError, match=r"not Moodle's grading worksheet: expected the columns Identifier and "
                                          r"Full name .*Download grading worksheet"):
        read_moodle_worksheet(wrong, "email")
    worksheet = moodle_worksheet(tmp_path / "ws.csv")
    with pytest.raises(RosterError, match=r"no 'ID number' column.*moodle_identity = 'idnumber'.*"
                                          r"one it has: email \(Email address\)"):
        read_moodle_worksheet(worksheet, "idnumber")
    got = read_moodle_worksheet(worksheet, "email")
    assert got["participants"]["1234569"] == "jane.smith@example.edu", "emails name students in lower case"
    assert got["students"]["jane.smith@example.edu"]["Email address"] == "Jane.Smith@Example.edu", "kept as is"


def test_gradebook_column_titles():
    canvas = ["Lab 7: Tiny (4101)", "Lab 3: The MLP (4102)", "Lab 3: The MLP"]
    assert column_title("canvas", "Lab 7: Tiny", canvas) == "Lab 7: Tiny (4101)", "the id from Canvas's export"
    assert column_title("canvas", "Lab 9: New (777)", canvas) == "Lab 9: New (777)"
    assert column_title("canvas", "Lab 8", canvas) == "Lab 8", "Canvas matches it by name or creates it"
    assert column_title("moodle", "Lab 7: Tiny", []) == "Assignment: Lab 7: Tiny (Real)"
    assert column_title("moodle", "Aufgabe: Lab 7 (Punkte)", []) == "Aufgabe: Lab 7 (Punkte)"


def test_the_lms_settings_are_checked(tmp_path):
    course = course_folder(tmp_path / "c", "moodle", "Lab 7: Tiny", moodle_identity="idnumber")
    assert course.settings.moodle_identity == "idnumber" and course.settings.gradebook_title(LAB) == "Lab 7: Tiny"
    text = (tmp_path / "c" / "course.toml").read_text()
    (tmp_path / "c" / "course.toml").write_text(text.replace('"idnumber"', '"student number"'))
    with pytest.raises(SettingsError, match=r"moodle_identity must be one of email, idnumber, username"):
        load(tmp_path / "c" / "course.toml")
    (tmp_path / "c" / "course.toml").write_text(text.replace('07_tiny = "Lab 7: Tiny"', "07_tiny = 7"))
    with pytest.raises(SettingsError, match=r"\[gradebook\] 07_tiny must be a non-empty string"):
        load(tmp_path / "c" / "course.toml")
    assert load().gradebook_title("03_mlp") == "Lab 3: The MLP", "the kit's course.toml titles its labs"


def test_zip_names_without_the_utf8_flag_are_read_as_utf8(tmp_path):
    download = without_utf8_flag(make_zip(tmp_path / "d.zip", {"김민준_20001_30001_07_tiny.ipynb": (b"{}", T0)}))
    with zipfile.ZipFile(download) as archive:
        assert archive.infolist()[0].filename != "김민준_20001_30001_07_tiny.ipynb", "the reader sees CP437"
    assert [e.name for e in entries(download)] == ["김민준_20001_30001_07_tiny.ipynb"]


@pytest.fixture(scope="module")
def canvas_collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("canvas-course")
    course = course_folder(root, "canvas", "Lab 7: Tiny")
    roster = canvas_gradebook_export(root.parent / f"{root.name}-gradebook.csv", bom=True)
    download = canvas_download(root.parent / f"{root.name}-submissions.zip")
    report = collect(LAB, download, course, roster=roster, say=quiet, lms="canvas")
    return SimpleNamespace(root=root, course=course, roster=roster, download=download, report=report,
                           by_file={r["file"]: r for r in report})


def test_canvas_collect_maps_each_file_to_its_canvas_user(canvas_collected):
    course, by_file = canvas_collected.course, canvas_collected.by_file
    assert course.students(LAB) == ["20001", "20002", "20003"], "kit ids are Canvas user ids"
    late = by_file["김민준_late_20001_30001_07_tiny.ipynb"]
    assert late["action"] == "collected" and "LATE (Canvas)" in late["detail"] and "김, 민준" in late["detail"]
    meta = course.submission("20001", LAB)["lms"]
    assert meta["late"] is True and meta["user"] == "20001" and meta["file"] == "07_tiny.ipynb"
    assert course.submission("20002", LAB)["file"] == "obrienseán_20002_30011_07_tiny-1.ipynb", \
        "the higher Canvas file id is the newer upload, whatever the zip's times say"
    assert len(list((course.collected(LAB) / "20002").iterdir())) == 2, "both files of one student are kept"
    assert course.submission("20003", LAB)["lms"]["late"] is False


def test_canvas_collect_refuses_what_is_not_this_lab_or_not_in_the_roster(canvas_collected):
    by_file = canvas_collected.by_file
    ghost = by_file["ghost_29999_30030_07_tiny.ipynb"]
    assert ghost["action"] == "refused" and "Canvas user id 29999" in ghost["detail"]
    assert str(canvas_collected.roster.resolve()) in ghost["detail"], "the message names the roster file"
    assert "not a notebook" in by_file["smithjaneanne_20003_30021_notes.pdf"]["detail"]
    assert "the name says 03_mlp" in by_file["studenttest_20099_30040_03_mlp.ipynb"]["detail"]
    log = list(csv.DictReader(open(canvas_collected.course.collected(LAB) / "collect-log.csv")))
    assert {row["file"] for row in log} == set(by_file), "every file of the download is in the log"


def test_canvas_collect_again_changes_nothing_and_needs_no_roster(canvas_collected):
    again = collect(LAB, canvas_collected.download, canvas_collected.course, say=quiet, lms="canvas")
    assert {r["action"] for r in again} <= {"skipped", "refused"}
    assert (canvas_collected.root / ".autograder" / "roster-canvas.json").exists(), "the roster map is kept"


def test_collect_without_a_roster_says_which_export_to_give(tmp_path):
    course = course_folder(tmp_path / "c", "canvas", "Lab 7: Tiny")
    with pytest.raises(RosterError, match=r"needs the course's roster once: in Canvas, Grades > Export"):
        collect(LAB, canvas_download(tmp_path / "d.zip"), course, say=quiet, lms="canvas")
    with pytest.raises(RosterError, match=r"needs the grading worksheet of 07_tiny's assignment"):
        collect(LAB, moodle_download(tmp_path / "m.zip"), course, say=quiet, lms="moodle")


def test_the_cli_takes_the_lms_from_course_toml(tmp_path, capsys):
    from autograder.__main__ import main

    root = tmp_path / "c"
    course = course_folder(root, "moodle", "Lab 7: Tiny")
    worksheet = moodle_worksheet(tmp_path / "worksheet.csv")
    assert main(["collect", LAB, str(moodle_download(tmp_path / "m.zip")), "--course", str(root),
                 "--roster", str(worksheet)]) == 0
    out = capsys.readouterr().out
    assert "LATE (Moodle)" in out and "1 marked late by the LMS" in out, out
    assert course.students(LAB) == sorted(MOODLE_EXPECTED)


# ---------------------------------------------------------------- graded: collect, grade, export, import

@pytest.fixture(scope="session")
def sandbox():
    """The grading sandbox works here, or the tests that need it skip (fail under CI=true) saying why."""
    result = probe()
    require(result.get("ok"), f"the grading sandbox does not work here ({describe(result)}): it needs Linux with "
                              "unprivileged user namespaces (docs/grading.md, 'Without root')")
    return result


@pytest.fixture(scope="module")
def canvas_graded(canvas_collected, sandbox):
    from autograder.grade import grade

    grade(LAB, canvas_collected.course, workers=2, limits=CORPUS_LIMITS, sandbox="full", say=print)
    lines = []
    path = export(canvas_collected.course, say=lines.append, lms="canvas")
    return SimpleNamespace(**vars(canvas_collected), path=path, text=path.read_text(encoding="utf-8"), said=lines)


def test_canvas_imports_the_export_as_is(canvas_graded):
    text = canvas_graded.text
    header = next(csv.reader(io.StringIO(text)))
    assert header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Lab 7: Tiny (4101)"], \
        "Canvas's identity columns, then the lab as Canvas's assignment 4101; no total"
    columns = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    roster = [dict(zip(columns, s, strict=True)) for s in CANVAS_STUDENTS]
    got = canvas_import(text, roster, {"Lab 7: Tiny": "4101", "Lab 3: The MLP": "4102"})
    assert got["new"] == [] and got["unknown"] == [], got
    assert got["points"] == {"Lab 7: Tiny": "5"}
    assert {user: scores["Lab 7: Tiny"] for user, scores in got["scores"].items()} == CANVAS_EXPECTED
    assert any("Grades > Import" in line for line in canvas_graded.said), canvas_graded.said


def test_canvas_rows_match_by_sis_ids_too(canvas_graded):
    """Canvas tries ID, then SIS User ID, then SIS Login ID: each identity column the kit writes is right."""
    rows = list(csv.DictReader(io.StringIO(canvas_graded.text)))
    by_user = {row["ID"]: row for row in rows if row["ID"]}
    for name, user, sis, login, section in CANVAS_STUDENTS[:3]:
        row = by_user[user]
        assert (row["Student"], row["SIS User ID"], row["SIS Login ID"], row["Section"]) == (name, sis, login,
                                                                                             section)
    assert "20099" not in by_user, "the Test Student has no grade: no row"


@pytest.fixture(scope="module")
def moodle_graded(tmp_path_factory, sandbox):
    from autograder.grade import grade

    root = tmp_path_factory.mktemp("moodle-course")
    course = course_folder(root, "moodle", "Lab 7: Tiny")
    worksheet = moodle_worksheet(root.parent / f"{root.name}-worksheet.csv")
    report = collect(LAB, moodle_download(root.parent / f"{root.name}-download.zip"), course, roster=worksheet,
                     say=quiet, lms="moodle")
    # and one file collected the kit's way, which Moodle's roster does not know
    collect(LAB, make_zip(root.parent / f"{root.name}-by-hand.zip", {"s7654321_07_tiny.ipynb": (nb(), T0)}), course,
            say=quiet, lms="none")
    grade(LAB, course, workers=2, limits=CORPUS_LIMITS, sandbox="full", say=print)
    lines = []
    path = export(course, say=lines.append, lms="moodle")
    return SimpleNamespace(course=course, report={r["file"]: r for r in report}, worksheet=worksheet,
                           text=path.read_text(encoding="utf-8"), said=lines)


def test_moodle_collect_maps_participants_through_the_worksheet(moodle_graded):
    course, by_file = moodle_graded.course, moodle_graded.report
    assert course.students(LAB) == sorted([*MOODLE_EXPECTED, "s7654321"]), "kit ids: the emails (and the one by hand)"
    assert course.submission("minjun.kim@example.edu", LAB)["lms"]["late"] is True
    assert "LATE (Moodle)" in by_file["김민준_1234567_assignsubmission_file/07_tiny.ipynb"]["detail"]
    assert course.submission("sean.obrien@example.edu", LAB)["file"].endswith("07_tiny (1).ipynb"), "the newer wins"
    assert len(list((course.collected(LAB) / "sean.obrien@example.edu").iterdir())) == 2
    ghost = by_file["Ghost Person_1239999_assignsubmission_file/07_tiny.ipynb"]
    assert ghost["action"] == "refused" and str(moodle_graded.worksheet.resolve()) in ghost["detail"]
    assert "not a notebook" in by_file["Jane Anne Smith_1234569_assignsubmission_onlinetext/onlinetext.html"][
        "detail"]


def test_moodle_imports_the_export_as_is(moodle_graded):
    rows = list(csv.reader(io.StringIO(moodle_graded.text)))
    assert rows[0] == ["Full name", "Email address", "Assignment: Lab 7: Tiny (Real)"], "no total, no extra row"
    users = {email: email.lower() for _, _, email, _ in MOODLE_STUDENTS}  # Moodle's users, by email
    grades = moodle_import(moodle_graded.text, "Email address", users)
    assert {user: g["Assignment: Lab 7: Tiny (Real)"] for user, g in grades.items()} == MOODLE_EXPECTED
    assert any("Map from 'Email address'" in line and "useremail" in line for line in moodle_graded.said)


def test_export_leaves_out_loudly_who_the_roster_does_not_know(moodle_graded, tmp_path):
    said = " ".join(moodle_graded.said)
    assert "NOT EXPORTED: 1 student(s)" in said and "s7654321" in said, said
    assert "s7654321" not in moodle_graded.text
    course = moodle_graded.course
    export(course, to=tmp_path / "plain.csv", say=quiet, lms="none")
    plain = list(csv.reader(open(tmp_path / "plain.csv", encoding="utf-8")))
    assert plain[0] == ["student", LAB, "total"] and "s7654321" in {row[0] for row in plain}, \
        "lms none: the generic table, everyone in it"
    with pytest.raises(RosterError, match=r"roster-canvas.json, and there is none: collect with --lms canvas"):
        export(course, to=tmp_path / "c.csv", say=quiet, lms="canvas")


def test_a_canvas_name_that_is_not_the_rosters_is_reported(tmp_path):
    course = course_folder(tmp_path / "c", "canvas", "Lab 7: Tiny")
    download = make_zip(tmp_path / "d.zip", {"parkjisoo_20001_30001_07_tiny.ipynb": (nb(), T0)})
    (row,) = collect(LAB, download, course, roster=canvas_gradebook_export(tmp_path / "g.csv"), say=quiet,
                     lms="canvas")
    assert row["action"] == "collected" and row["student"] == "20001", "Canvas's user id decides"
    assert "the file name says 'parkjisoo', the roster says '김, 민준'" in row["detail"], row


def test_plain_export_takes_the_lms_from_course_toml(moodle_graded, tmp_path, capsys):
    from autograder.__main__ import main

    assert main(["export", "--course", str(moodle_graded.course.root), "--to", str(tmp_path / "out.csv")]) == 0
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == moodle_graded.text
    assert "Moodle: Grades > Import > CSV file" in capsys.readouterr().out

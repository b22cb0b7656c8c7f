"""LMS presets for `collect --lms` and `export --lms`: Canvas and Moodle, as they really name things.

What each LMS gives the instructor, and what the kit takes from it (docs/lms.md has the steps
and the sources):

**Canvas.** "Download Submissions" names each file
``<sortable name>_[late_]<user id>_<file id>_<file name>``: the student's "Last, First" with
everything but letters, digits and ``_`` removed and lower-cased (Korean names stay Korean),
``late`` when Canvas marked the submission late, the Canvas user id, the id of the uploaded file
(which grows with every upload) and the name the student gave it (``07_tiny-1.ipynb`` when the
student uploaded a second file of the same name). The roster is Canvas's gradebook export
(Grades > Export): ``Student, ID, SIS User ID, SIS Login ID, [Integration ID], [Root Account],
Section``, one column per assignment titled ``<name> (<assignment id>)``, a ``Points Possible`` row
(and sometimes a ``Manual Posting`` row) before the students. The kit's student id is the Canvas
user id (the ``ID`` column): it is in every file name of the download, every student has one, it
never changes and it is digits only; SIS ids can be empty (the Test Student, non-SIS
enrolments). Canvas's gradebook import matches a row by ``ID``, then ``SIS User ID``, then ``SIS
Login ID``; a column ``<name> (<id>)`` updates that assignment, a plain name the assignment of
that exact name, any other column creates a new assignment.

**Moodle.** "Download all submissions" holds one folder per student,
``<Full name>_<participant id>_assignsubmission_file[_]/<file name>`` (or, with "Download
submissions in folders" off, files ``<Full name>_<participant id>_assignsubmission_file_<file
name>``). The participant id is Moodle's per-assignment id of the student (blind marking shows it
as "Participant"); the only export that maps it to a person is that assignment's **grading
worksheet** (Assignment > Submissions > "Download grading worksheet"): ``Identifier`` ("Participant
1234567"), ``Full name``, the identity fields the site shows (``Email address`` by default, ``ID
number``, ``Username``), ``Status`` (says "... late" for a late submission), grades. The grader
report and participants exports have no participant id, so they cannot map the download. The
kit's student id is the worksheet's identity column set by ``[submission] moodle_identity``
(email by default, lower-cased): the same person in every assignment, and what Moodle's grade
import (Grades > Import > CSV file) maps a row by ("Map from" that column, "Map to" useremail,
useridnumber or username). That import creates or updates one grade item per column and stops at
the first row whose user it cannot find, so it gets no "Points Possible" row.

The roster map is kept in ``<course>/.autograder/roster-<lms>.json``: every student read from a
roster so far (a newer roster updates them; nobody is dropped), the roster's identity columns and
assignment columns, and for Moodle each lab's participant ids.
"""
from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from autograder.settings import SettingsError

LMS_NAMES = {"canvas": "Canvas", "moodle": "Moodle"}
JUNK = ("__MACOSX", ".ipynb_checkpoints")

# --------------------------------------------------------------------------- file names in a download

# <sortable name>_[late_]<user id>_<file id>_<file name>; the name is absent with anonymous grading.
# Canvas removes "_<digits>_" from names, so the first "_<digits>_<digits>_" ends the name.
CANVAS_FILE = re.compile(r"^(?P<name>.*?)(?:^|_)(?:(?P<late>late)_)?(?P<user>\d+)_(?P<attachment>\d+)_(?P<file>.+)$",
                         re.S)
# <Full name>_<participant id>_assignsubmission_<plugin>[_]/<path> (folders) or ..._<plugin>_<file> (flat).
MOODLE_FILE = re.compile(r"^(?P<name>.+?)_(?P<participant>\d+)_assignsubmission_(?P<plugin>[a-z0-9]+)"
                         r"(?:_?/(?P<path>.+)|_(?P<flat>[^/]+))$", re.S)
CANVAS_EXPECTED = "<sortable name>_[late_]<user id>_<file id>_<file name>, as Canvas's Download Submissions names them"
MOODLE_EXPECTED = ("<Full name>_<participant id>_assignsubmission_file/<file name>, as Moodle's "
                   "Download all submissions names them")


def nfc(text: str) -> str:
    """Unicode NFC: a name typed on one system and zipped on another (macOS writes NFD) compares equal."""
    return unicodedata.normalize("NFC", text)


def canvas_sanitized(sortable_name: str) -> str:
    """The name part Canvas writes for a student: "Kim, Minjun" -> "kimminjun", "김, 민준" -> "김민준"."""
    name = re.sub(r"_(\d+)_", r"\1", nfc(sortable_name))
    return re.sub(r"[^\w]", "", name).lower()


def parse_canvas(path: str) -> dict | None:
    """{name, late, user, attachment, file} of a file of a Canvas download, or None.  Canvas's zip is flat;
    the part of the path that is Canvas's name is the last one that looks like it (a folder the zip was
    unpacked into comes before it; a student's zip, ``<canvas name>.zip/problem1.ipynb``, is that part)."""
    for part in reversed(PurePosixPath(nfc(path)).parts):
        match = CANVAS_FILE.match(part)
        if match:
            return {"name": match["name"], "late": bool(match["late"]), "user": match["user"],
                    "attachment": int(match["attachment"]), "file": match["file"]}
    return None


def parse_moodle(path: str) -> dict | None:
    """{name, participant, plugin, file} of a path in a Moodle download (folder or flat layout), or None."""
    path = nfc(path)
    parts = PurePosixPath(path).parts
    # the download may sit in a folder of its own (an unpacked zip): find the part that is Moodle's
    for start in range(len(parts)):
        match = MOODLE_FILE.match("/".join(parts[start:]))
        if match and "/" not in match["name"]:
            file = match["path"] if match["path"] is not None else match["flat"]
            return {"name": match["name"], "participant": match["participant"], "plugin": match["plugin"],
                    "file": file, "late": None}
    return None


# --------------------------------------------------------------------------- the rosters

CANVAS_IDENTITY = ("Student", "LastName", "FirstName", "ID", "SIS User ID", "SIS Login ID", "Integration ID",
                   "Root Account", "Section")
CANVAS_TOTALS = re.compile(r"Current Score|Current Points|Current Grade|Final Score|Final Points|Final Grade|"
                           r"Override Score|Override Grade|Override Status")
MOODLE_COLUMNS = {"email": "Email address", "idnumber": "ID number", "username": "Username"}
MOODLE_IMPORT_MAPTO = {"email": "useremail", "idnumber": "useridnumber", "username": "username"}
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")


class RosterError(SystemExit):
    """A roster, a download or an export that does not fit the LMS, said for the instructor (the CLI prints it)."""


def read_csv(path: Path) -> list:
    """The rows of a CSV file as an LMS writes it: UTF-8 with or without a byte-order mark, comma or semicolon
    (Canvas writes ';' in locales with a decimal comma), blank lines dropped."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RosterError(f"cannot read the roster {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RosterError(f"{path} is not UTF-8 text: give the LMS's CSV export as it was downloaded "
                          "(not re-saved by a spreadsheet in another encoding)") from None
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    return [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
            if any(cell.strip() for cell in row)]


def read_canvas_roster(path: Path) -> dict:
    """Canvas's gradebook export: {columns, assignments, students: {user id: {column: value}}}."""
    rows = read_csv(path)
    header = [cell.strip() for cell in rows[0]] if rows else []
    ok = len(header) > 3 and (header[0] == "Student" and header[1] == "ID" or
                              header[:3] == ["LastName", "FirstName", "ID"])
    if not ok or "Section" not in header:
        raise RosterError(f"{path} is not Canvas's gradebook export: expected its first row to start with "
                          f"Student,ID,SIS User ID,SIS Login ID,Section (Grades > Export > Export Entire Gradebook), "
                          f"got {','.join(header[:6]) or 'an empty file'}")
    section = header.index("Section")
    columns = header[:section + 1]
    unknown = [c for c in columns if c not in CANVAS_IDENTITY]
    if unknown:
        raise RosterError(f"{path}: unexpected column(s) {unknown} among Canvas's student columns {columns}: "
                          "give the gradebook export as Canvas wrote it")
    assignments = [c for c in header[section + 1:] if c and not CANVAS_TOTALS.search(c)]
    students = {}
    for row in rows[1:]:
        cells = dict(zip(header, (cell.strip() for cell in row), strict=False))
        if "Points Possible" in (row[0] if row else "") or all(
                re.fullmatch(r"\s*(Muted|Manual Posting.*)?\s*", c, re.I) for c in row):
            continue
        user = cells.get("ID", "")
        if not user.isdigit():
            raise RosterError(f"{path}: a student row without a Canvas user id in the ID column: {row[:section + 1]}")
        students.setdefault(user, {c: cells.get(c, "") for c in columns})
    if not students:
        raise RosterError(f"{path}: Canvas's gradebook export has no student rows")
    return {"columns": columns, "assignments": assignments, "students": students}


def read_moodle_worksheet(path: Path, identity: str) -> dict:
    """One assignment's grading worksheet: {columns, students: {kit id: {column: value}},
    participants: {participant id: kit id}, status: {participant id: status text}}."""
    rows = read_csv(path)
    header = [cell.strip() for cell in rows[0]] if rows else []
    if "Identifier" not in header or "Full name" not in header:
        raise RosterError(f"{path} is not Moodle's grading worksheet: expected the columns Identifier and Full name "
                          f"(Assignment > Submissions > Actions > Download grading worksheet), got "
                          f"{','.join(header[:6]) or 'an empty file'}")
    column = MOODLE_COLUMNS[identity]
    if column not in header:
        present = [f"{key} ({name})" for key, name in MOODLE_COLUMNS.items() if name in header]
        raise RosterError(f"{path}: the worksheet has no {column!r} column, which [submission] moodle_identity = "
                          f"{identity!r} names (Moodle lists only the identity fields of the site's "
                          f"showuseridentity setting). Set moodle_identity in course.toml to one it has: "
                          f"{', '.join(present) or 'none: ask your Moodle admin to show email or ID number'}")
    columns = ["Full name", *(name for name in MOODLE_COLUMNS.values() if name in header)]
    students, participants, status = {}, {}, {}
    for row in rows[1:]:
        cells = dict(zip(header, (cell.strip() for cell in row), strict=False))
        number = re.search(r"(\d+)\s*$", cells.get("Identifier", ""))
        value = nfc(cells.get(column, ""))
        if not number:
            raise RosterError(f"{path}: a row without a participant number in Identifier: {row[:3]}")
        kit_id = value.lower() if identity == "email" else value
        if not kit_id or not SAFE_ID.fullmatch(kit_id):
            raise RosterError(f"{path}: participant {number[1]} ({cells.get('Full name', '')}) has "
                              f"{column} {value!r}, which cannot name a student's folder (expected letters, digits "
                              f"and . _ @ + -). Set [submission] moodle_identity to another column")
        students[kit_id] = {c: nfc(cells.get(c, "")) for c in columns}
        participants[number[1]] = kit_id
        status[number[1]] = cells.get("Status", "")
    if not students:
        raise RosterError(f"{path}: the grading worksheet has no participants")
    return {"columns": columns, "students": students, "participants": participants, "status": status}


class Roster:
    """The roster map of the course folder (``.autograder/roster-<lms>.json``)."""

    def __init__(self, course, lms: str):
        if lms not in LMS_NAMES:
            raise RosterError(f"unknown LMS {lms!r}: expected {', '.join(LMS_NAMES)} or none")
        self.course, self.lms = course, lms
        self.path = course.state / f"roster-{lms}.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {
            "lms": lms, "columns": [], "assignments": [], "students": {}, "participants": {}, "status": {},
            "sources": {}}

    @property
    def known(self) -> bool:
        return bool(self.data["students"])

    def source(self, lab: str | None = None) -> str:
        sources = self.data["sources"]
        return sources.get(lab) or sources.get("*") or str(self.path)

    def read(self, path: str | Path, lab: str) -> None:
        """Merge a roster export into the map and save it (newer rows replace older ones; nobody is dropped)."""
        path = Path(path).resolve()
        if self.lms == "canvas":
            got = read_canvas_roster(path)
            self.data["assignments"] = got["assignments"]
            self.data["sources"]["*"] = str(path)
        else:
            got = read_moodle_worksheet(path, self.course.settings.moodle_identity)
            self.data["participants"][lab] = got["participants"]
            self.data["status"][lab] = got["status"]
            self.data["sources"][lab] = str(path)
        self.data["columns"] = got["columns"] if not self.data["columns"] else \
            list(dict.fromkeys([*self.data["columns"], *got["columns"]]))
        self.data["students"].update(got["students"])
        self.data["read_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".partial")
        tmp.write_text(json.dumps(self.data, indent=1, ensure_ascii=False))
        tmp.replace(self.path)

    def person(self, student: str) -> dict | None:
        return self.data["students"].get(student)

    def display(self, student: str) -> str:
        person = self.person(student) or {}
        return person.get("Student") or " ".join(filter(None, (person.get("FirstName"), person.get("LastName")))) \
            or person.get("Full name") or student


# --------------------------------------------------------------------------- collect

class Preset:
    """Maps the files of one LMS download to the kit's students (used by collect.collect)."""

    def __init__(self, course, lms: str, lab: str, roster: str | Path | None):
        self.lms, self.lab, self.name = lms, lab, LMS_NAMES.get(lms, lms)
        self.roster = Roster(course, lms)
        if roster:
            self.roster.read(roster, lab)
        if lms == "canvas" and not self.roster.known:
            raise RosterError(f"collect --lms canvas needs the course's roster once: in Canvas, Grades > Export > "
                              f"Export Entire Gradebook, then collect again with --roster <that CSV file> (the kit "
                              f"keeps it in {self.roster.path})")
        if lms == "moodle" and lab not in self.roster.data["participants"]:
            raise RosterError(f"collect --lms moodle needs the grading worksheet of {lab}'s assignment: in Moodle, the "
                              f"assignment's Submissions page > Actions > Download grading worksheet, then collect "
                              f"again with --roster <that CSV file> (participant numbers differ between "
                              f"assignments, so each lab needs its own)")

    def map(self, entry, lab: str, labs: list, lab_mentions) -> tuple:
        """(student, None), (None, why it is refused) or (None, None) for files ignored silently; sets entry.meta."""
        path = PurePosixPath(entry.name)
        if any(part in JUNK or part.startswith(".") for part in path.parts):
            return None, None
        if path.suffix.lower() != ".ipynb":
            return None, f"not a notebook file ({path.suffix or 'no extension'})"
        parsed = parse_canvas(entry.name) if self.lms == "canvas" else parse_moodle(entry.name)
        if parsed is None:
            expected = CANVAS_EXPECTED if self.lms == "canvas" else MOODLE_EXPECTED
            return None, (f"not a {self.name} download's file name (expected {expected}; got {entry.name!r}): "
                          f"collect files renamed by hand with --lms none")
        if self.lms == "canvas":
            student = parsed["user"]
            person = self.roster.person(student)
            if person is None:
                return None, (f"Canvas user id {student} ({parsed['name'] or 'no name'}) is not in the roster "
                              f"{self.roster.source()}: export Canvas's gradebook again (Grades > Export) and collect "
                              f"with --roster <the new file>")
            sortable = person.get("Student") or f"{person.get('LastName', '')}, {person.get('FirstName', '')}"
            if parsed["name"] and parsed["name"] != canvas_sanitized(sortable):
                parsed["roster_name"] = sortable  # reported: the download may not be this course's
        else:
            participants = self.roster.data["participants"][self.lab]
            student = participants.get(parsed["participant"])
            if student is None:
                return None, (f"Moodle participant {parsed['participant']} ({parsed['name']}) is not in the grading "
                              f"worksheet {self.roster.source(self.lab)}: download the worksheet of this assignment "
                              f"again and collect with --roster <the new file>")
            status = self.roster.data["status"].get(self.lab, {}).get(parsed["participant"], "")
            parsed["status"] = status
            parsed["late"] = bool(re.search(r"\blate\b", status, re.I))
        others = lab_mentions(parsed["file"], labs) - {lab}
        if others and lab not in lab_mentions(parsed["file"], labs):
            return None, f"the name says {', '.join(sorted(others))}, not {lab}"
        entry.meta = {"lms": self.lms, **{k: v for k, v in parsed.items() if v not in (None, "")},
                      "person": self.roster.display(student)}
        return student, None

    def arrange(self, mapped: list) -> list:
        """Canvas's zip times are when the zip was made, not when a file was uploaded; its file ids grow with each
        upload. So among one student's files of one download, the higher file id is the newer: they get the
        same time (their latest) and that order."""
        if self.lms == "canvas":
            latest = {}
            for student, *_, entry in mapped:
                latest[student] = max(latest.get(student, entry.time), entry.time)
            for student, *_, entry in mapped:
                entry.time, entry.rank = latest[student], entry.meta.get("attachment", 0)
        return mapped

    def annotate(self, row: dict, entry) -> dict:
        """The report row with who the student is and the late flag."""
        meta = getattr(entry, "meta", {}) or {}
        if not meta:
            return row
        notes = [meta.get("person", "")]
        if meta.get("late"):
            notes.append(f"LATE ({self.name})")
        if meta.get("roster_name"):
            notes.append(f"the file name says {meta['name']!r}, the roster says {meta['roster_name']!r}: "
                         "is this download from this course?")
        detail = "; ".join(n for n in notes if n)
        row["detail"] = f"{detail}; {row['detail']}" if row["detail"] else detail
        return row


# --------------------------------------------------------------------------- export

CANVAS_TITLE_ID = re.compile(r"^(.*)\s\((\d+)\)$")  # Canvas's Assignment.title_and_id


def column_title(lms: str, title: str, assignments: list) -> str:
    """The gradebook column for a lab titled ``title`` in the course settings.

    Canvas: "<name> (<id>)" as is; a plain name becomes the roster's "<name> (<id>)" when Canvas's export had
    that assignment (matched by id on import), else stays the name (Canvas matches it by name or creates it).
    Moodle: a column title of Moodle's own export ("Assignment: <name> (Real)") as is, else
    "Assignment: <name> (Real)", which Moodle's import maps to the assignment <name> by itself."""
    if lms == "canvas":
        if CANVAS_TITLE_ID.match(title):
            return title
        same = [a for a in assignments if (CANVAS_TITLE_ID.match(a) or [None, a])[1] == title]
        return same[0] if len(same) == 1 else title
    if re.fullmatch(r".+: .+ \([^()]+\)", title):
        return title
    return f"Assignment: {title} (Real)"


def export_rows(course, lms: str, labs: list, maximum: dict, scores: dict, number) -> tuple:
    """(rows of the CSV, students left out because the roster does not know them, notes for the instructor)."""
    roster = Roster(course, lms)
    if not roster.known:
        raise RosterError(f"export --lms {lms} writes the students as {LMS_NAMES[lms]} knows them, from the roster "
                          f"that collect --lms {lms} --roster keeps in {roster.path}, and there is none: collect "
                          f"with --lms {lms} --roster first, or export --lms none for a plain CSV")
    titles = [column_title(lms, course.settings.gradebook_title(lab), roster.data["assignments"]) for lab in labs]
    notes = [f"[gradebook] in {course.settings.path} names {lab}, which is not a lab of this course: ignored"
             for lab, _ in course.settings.gradebook if lab not in course.labs()]
    if lms == "canvas":
        for lab, title in zip(labs, titles, strict=False):
            if not CANVAS_TITLE_ID.match(title):
                notes.append(f"{lab}: column {title!r} has no Canvas assignment id: Canvas updates the assignment of "
                             f"exactly that name, or creates one ([gradebook] {lab} in course.toml, docs/lms.md)")
    if len(set(titles)) != len(titles):
        raise SettingsError(f"{course.settings.path}: two labs have the same gradebook column {titles}: give each "
                            f"lab its own title in [gradebook]")
    columns = list(roster.data["columns"])
    if lms == "canvas" and "Section" not in columns:
        columns.append("Section")
    rows = [[*columns, *titles]]
    if lms == "canvas":  # Canvas's own export writes this row; its import takes each lab's points possible from it
        rows.append(["    Points Possible", *[""] * (len(columns) - 1), *(number(maximum[lab]) for lab in labs)])
    left_out = []
    for student in sorted(scores, key=lambda s: (roster.display(s).casefold(), s)):
        person = roster.person(student)
        if person is None:
            left_out.append(student)
            continue
        rows.append([person.get(c, "") for c in columns] +
                    [number(scores[student][lab]) if lab in scores[student] else "" for lab in labs])
    return rows, left_out, notes


def import_steps(lms: str, path: Path, course) -> str:
    """What to do with the file in the LMS (printed by export)."""
    if lms == "canvas":
        return (f"Canvas: Grades > Import > choose {path.name} > Upload Data; check the changes Canvas lists, "
                "then Save Changes (docs/lms.md)")
    column = MOODLE_COLUMNS[course.settings.moodle_identity]
    return (f"Moodle: Grades > Import > CSV file > choose {path.name}; Identify user by: Map from {column!r}, "
            f"Map to {MOODLE_IMPORT_MAPTO[course.settings.moodle_identity]!r}; check each lab's grade item under "
            "Grade item mappings; Upload grades (docs/lms.md)")

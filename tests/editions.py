"""Helpers for the tests of what students get: course settings written in code, the student
edition published into a folder, and the search for solution or hidden-test text in a tree.

The leak search compares *token sequences*, not verbatim lines, so that reformatting a
solution (other spacing, a line split in two, ``x=1`` for ``x = 1``) does not hide it:

- every line inside a ``### BEGIN SOLUTION`` / ``### BEGIN HIDDEN TESTS`` region with at
  least LINE_TOKENS tokens, compared as its token sequence with every line of a file;
- every run of SPAN_TOKENS consecutive tokens of such a region, compared with every run
  in a file (across lines).

What students are shown anyway is no secret: sequences that also occur outside the regions
of any lab are left out, and so are the few common idioms in IDIOMS (each is also in
labkit's own code, which students have; a region is cut at them).
"""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import nbformat

from autograder import ROOT, labs
from autograder.publish import publish
from autograder.settings import load
from autograder.vocabulary import is_answer, regions, without_markers

TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|[^\s\w]")
LINE_TOKENS = 8
SPAN_TOKENS = 12
# Phrases that solutions or hidden tests share with labkit's own code (checked by hand: idioms, not answers).
IDIOMS = ("rtol=1e-5, atol=1e-6", "rtol=1e-6, atol=1e-6", ".float().div(255.0).unsqueeze(1)",
          "sum(p.numel() for p in model.parameters())", ".float().mean().item()", "nn.ReLU(), nn.Linear(",
          'raise ValueError(f"unknown optimizer {name!r}', "for _ in range(2):")


def tokens(text: str) -> list:
    return TOKEN.findall(text)


def _spans(words: list) -> set:
    return {tuple(words[i:i + SPAN_TOKENS]) for i in range(len(words) - SPAN_TOKENS + 1)}


def _cut_idioms(words: list) -> list:
    """The token list split into pieces at every idiom (so that no span runs through one)."""
    pieces, start, i = [], 0, 0
    idioms = [tokens(idiom) for idiom in IDIOMS]
    while i < len(words):
        idiom = next((t for t in idioms if words[i:i + len(t)] == t), None)
        if idiom:
            pieces.append(words[start:i])
            i = start = i + len(idiom)
        else:
            i += 1
    return pieces + [words[start:]]


def secrets(solutions: Path = ROOT / "solutions") -> tuple:
    """({token line: lab}, {token span: lab}) of every solution and hidden-test region, minus what any lab
    shows outside its regions."""
    secret_regions, public = [], []
    for lab in labs():
        for cell in nbformat.read(solutions / lab / f"{lab}.ipynb", as_version=4).cells:
            inside, outside = regions(cell.source)
            secret_regions += [(lab, text) for text in inside]
            public.append(outside)
    public_lines = {tuple(tokens(line)) for text in public for line in text.splitlines()}
    public_spans = set().union(*(_spans(tokens(text)) for text in public))
    lines, spans = {}, {}
    for lab, text in secret_regions:
        for line in text.splitlines():
            words = tuple(tokens(line))
            if len(words) >= LINE_TOKENS and words not in public_lines and not any(
                    tuple(tokens(idiom)) == words for idiom in IDIOMS):
                lines.setdefault(words, lab)
        for piece in _cut_idioms(tokens(text)):
            for span in _spans(piece) - public_spans:
                spans.setdefault(span, lab)
    return lines, spans


def readable(path: Path) -> str:
    """A file's text as a student would read it (a notebook: its cells' sources and outputs, its metadata)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix != ".ipynb":
        return text
    nb = json.loads(text)
    parts = [json.dumps(nb.get("metadata", {}))]
    for cell in nb["cells"]:
        parts.append("".join(cell["source"]))
        parts.append(json.dumps(cell.get("metadata", {})))
        parts += [json.dumps(output) for output in cell.get("outputs", [])]
    return "\n".join(parts)


def leaks(tree: Path, solutions: Path = ROOT / "solutions") -> list:
    """(file, lab, the leaked text) for every secret line or span found in a file under ``tree``."""
    lines, spans = secrets(solutions)
    found = []
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and ".git" not in p.relative_to(tree).parts):
        text = readable(path)
        name = path.relative_to(tree).as_posix()
        for words in {tuple(tokens(line)) for line in text.splitlines()} & set(lines):
            found.append((name, lines[words], " ".join(words)))
        for span in _spans(tokens(text)) & set(spans):
            found.append((name, spans[span], " ".join(span)))
    return sorted(set(found))


# ---------------------------------------------------------------------------- settings and editions

def settings_file(folder: Path, **changes) -> Path:
    """The kit's course.toml with ``changes`` ({key: value}, by key name in any table), written into ``folder``."""
    data = tomllib.loads((ROOT / "course.toml").read_text())
    for key, value in changes.items():
        table = next(t for t, body in data.items() if key in body or (t == "student_edition" and key == "pip"))
        data[table][key] = value
    lines = []
    for table, body in data.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in body.items()]
    path = Path(folder) / "course.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def publish_edition(out: Path, **changes) -> Path:
    """Publish the student edition into ``out`` with the kit's settings, changed by ``changes``."""
    out.mkdir(parents=True, exist_ok=True)
    settings = load(settings_file(out.parent, **changes)) if changes else load()
    return publish(out, settings, say=lambda *a: None)


# ---------------------------------------------------------------------------- notebooks and kernels

def with_answers(nb, solved, grade_ids=None):
    """``nb`` (a release) with the answer cells ``grade_ids`` (default: all) filled in from ``solved`` (the
    lab's source), the solution markers taken out, as a student who found the answers would write them."""
    answers = {c.metadata["nbgrader"]["grade_id"]: c for c in solved.cells if is_answer(c)}
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers and (grade_ids is None or grade_id in grade_ids):
            cell.source = without_markers(answers[grade_id].source)
    return nb


def half_done(lab: str):
    """The lab's release (notebooks/) with the first half of its answer cells filled in from the solution."""
    nb = nbformat.read(ROOT / "notebooks" / lab / f"{lab}.ipynb", as_version=4)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if is_answer(c)]
    return with_answers(nb, nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4),
                        ids[: (len(ids) + 1) // 2])


def kernelspec(home: Path, name: str, python: Path) -> str:
    """A Jupyter data folder ``home`` with a kernel ``name`` that runs ``python``; returns it, for JUPYTER_PATH."""
    spec = Path(home) / "kernels" / name
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name, "language": "python"}))
    return str(home)


def text_output(cell) -> str:
    """The text/plain of a cell's results and the text it printed."""
    return "".join(o.get("data", {}).get("text/plain", "") if o.output_type in ("execute_result", "display_data")
                   else o.get("text", "") for o in cell.outputs)

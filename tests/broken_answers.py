"""Run a lab's graded test cells in this process against its solution and against one-line breakages of it.

Used by tests/test_lab<N>_broken_answers.py: without a kernel or data, the answer cells (solution
regions only, markers dropped) are defined in a fresh namespace after the lab's imports (`prelude`),
then one test cell runs, all of it or only its visible part (what students run). A broken answer is
the solution with one line replaced; it must fail with a failed check (a CheckError), not a crash.
"""
import pytest

from autograder import solution_notebook
from autograder.vocabulary import HIDDEN, without_markers
from labkit.checks import CheckError


class LabCells:
    def __init__(self, lab: str, prelude: str, answers):
        self.prelude, self.answers = prelude, tuple(answers)
        self.sources = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution_notebook(lab).cells
                        if "grade_id" in c.metadata.get("nbgrader", {})}

    def solution(self) -> dict:
        return {grade_id: without_markers(self.sources[grade_id]) for grade_id in self.answers}

    def run(self, answers: dict, test_id: str, visible_only: bool = False) -> None:
        """Define the answers, then run the test cell (all of it, or its visible part) in a fresh namespace."""
        namespace = {}
        exec(self.prelude, namespace)
        for grade_id, code in answers.items():
            exec(compile(code, f"<answer {grade_id}>", "exec"), namespace)
        test = self.sources[test_id].split(HIDDEN[0])[0] if visible_only else self.sources[test_id]
        exec(compile(test, f"<test {test_id}>", "exec"), namespace)

    def check_breakage(self, grade_id: str, right: str, wrong: str, failing, visible: bool,
                       hidden_only: bool = False) -> None:
        """`right` (one line of the solution of `grade_id`) replaced by `wrong` fails every test in `failing`;
        with `visible`, their visible parts already fail; with `hidden_only`, the visible parts pass and only
        the hidden part catches it."""
        answers = self.solution()
        assert answers[grade_id].count(right) == 1, f"the solution of {grade_id} no longer has {right!r}: update BROKEN"
        answers[grade_id] = answers[grade_id].replace(right, wrong)
        for test_id in failing:
            with pytest.raises(CheckError):
                self.run(answers, test_id)
            if visible:
                with pytest.raises(CheckError):
                    self.run(answers, test_id, visible_only=True)
            elif hidden_only:
                self.run(answers, test_id, visible_only=True)

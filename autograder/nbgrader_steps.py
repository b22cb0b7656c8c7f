"""The steps that `nbgrader autograde` run directly needs on top of the grading worker's (trusted side).

``python -m autograder grade`` sets up each submission's sandbox in its worker
(``autograder.worker.grade_one``).  When nbgrader itself autogrades (``nbgrader autograde``
in a course folder with the kit's ``nbgrader_config.py``, or the formgrader's button), one
process grades many notebooks, so ``AutogradeExecute`` sets up each notebook's sandbox
itself, and ``NewRun`` starts each notebook's record afresh.  See
``autograder.nbgrader_course``, which puts them in nbgrader's configuration.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Dict, Enum

from autograder.isolation import Limits, SandboxDir, config, write_config
from autograder.preprocessors import SandboxedExecute, SandboxKernelManager, run_for


class NewRun(NbGraderPreprocessor):
    """The first autograde step: a fresh record of this notebook's run (one nbgrader process, e.g. the
    formgrader's server, may grade the same submission again)."""

    def preprocess(self, nb, resources):
        run_for(resources).__init__()
        return nb, resources


class AutogradeExecute(SandboxedExecute):
    """The kit's SandboxedExecute, setting up each notebook's sandbox itself: a scratch copy of the
    notebook's folder (what nbgrader put there: the lab's files and the submission) as the sandbox's
    /home/student, the course's limits, and the sandbox's mode, found once per process as ``grade``
    finds it (``grade.resolve_mode``)."""

    limits = Dict(help="the course's limits (autograder.isolation.Limits.to_json())").tag(config=True)
    sandbox = Enum(("auto", "full", "off"), "auto", help="full: refuse to grade without the sandbox; auto: "
                   "warn, then grade with resource limits only; off: no sandbox").tag(config=True)
    _modes: dict = {}  # (sandbox, limits) -> the mode found, once per process

    def _mode(self, limits: Limits) -> str:
        from autograder.grade import resolve_mode

        key = (self.sandbox, json.dumps(limits.to_json(), sort_keys=True))
        if key not in AutogradeExecute._modes:
            lines = []
            try:
                AutogradeExecute._modes[key] = resolve_mode(self.sandbox, limits, lines.append)
            except SystemExit as exc:
                raise RuntimeError(f"{exc}\n(nbgrader autograde refuses to grade with --AutogradeExecute.sandbox="
                                   "full; auto grades with resource limits only)") from None
            for line in lines:
                (self.log.warning if ("WARNING" in line or "OFF" in line) else self.log.info)(line)
        return AutogradeExecute._modes[key]

    def preprocess(self, nb, resources=None, km=None):
        from autograder.worker import _copy_matplotlib_cache, _read_report

        limits = Limits.from_json(self.limits) if self.limits else Limits()
        mode = self._mode(limits)
        folder = Path(resources["metadata"]["path"])
        name = resources["nbgrader"]["notebook"]
        private = Path(tempfile.mkdtemp(prefix="lkg-run-"))  # the launcher's report and log: outside the sandbox
        sandbox = SandboxDir((os.getpid() % 65536) * 64 + 63, mode)
        try:
            shutil.copytree(folder, sandbox.home, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
            nbformat.write(nb, sandbox.home / f"{name}.ipynb")
            _copy_matplotlib_cache(sandbox.home / ".config" / "matplotlib")
            cfg = config(sandbox, limits, mode, report=private / "report.json", stderr=private / "kernel.log")
            self._sandbox_config = str(write_config(sandbox, cfg))
            sandbox.hand_over()
            nb, resources = super().preprocess(nb, resources, km)
        finally:
            sandbox.remove()
        report = _read_report(private / "report.json")
        shutil.rmtree(private, ignore_errors=True)
        self._tell(run_for(resources), report, mode, f"{resources['nbgrader']['student']}/{name}")
        return nb, resources

    def create_kernel_manager(self):
        if not self.kernel_name:
            self.kernel_name = self.nb.metadata.get("kernelspec", {}).get("name") or "python3"
        self.km = SandboxKernelManager(kernel_name=self.kernel_name, config=self.config,
                                       sandbox_config=self._sandbox_config)
        return self.km

    def _tell(self, run, report: dict, mode: str, where: str) -> None:
        """What the grade's reason would say, in nbgrader's log."""
        if mode == "none":
            self.log.warning("%s: NOT SANDBOXED (resource limits only)", where)
        if run.kernel_error:
            self.log.error("%s: the grader could not run this notebook: %s", where, run.kernel_error)
        for cell in run.timeouts:
            self.log.warning("%s: %s hit the time limit and was interrupted", where, cell)
        if run.stopped and not run.kernel_error:
            crash = " (the memory cap of its process tree was reached)" if report.get("memory_cap_hit") else ""
            self.log.warning("%s: later cells not run: %s%s", where, run.stopped, crash)
        if run.restored:
            self.log.warning("%s: a student cell had changed %s (put back before each test)", where,
                             ", ".join(run.restored[:4]))

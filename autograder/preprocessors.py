"""nbgrader preprocessors of the sandboxed autograde (they run in a grading worker, the trusted side).

nbgrader's own autograde pipeline is kept; three steps are added or replaced
around its execution step (see ``autograder.worker.autograde_config``):

- ``ProtectTests`` (before execution): each graded test cell is sent to the
  kernel as a call to the harness of ``kernel_harness.py`` with a one-time nonce;
- ``SandboxedExecute`` (replaces nbgrader's ``Execute``): the kernel starts
  through ``sandbox.py``; wall-clock limits per cell and per notebook, a kernel
  that ignores an interrupt is stopped, a dead kernel or a stop marks every
  later cell "not run" (so a test that never ran can never score), outputs are
  capped while they arrive;
- ``RestoreTests`` (after execution): the original test sources are put back
  and a test without a matching "passed" report from the harness gets an error
  output, so nbgrader's own scoring (SaveAutoGrades) gives it 0.

What happened (timeouts, crash, restored tampering, test outcomes) is kept in
``RUNS`` for the worker, never read back from anything the sandbox wrote.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from time import monotonic, sleep, time

import nbformat
import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import DottedObjectName, Integer, Unicode, default

from autograder.isolation import launcher
from autograder.vocabulary import is_test, label

MIME = "application/vnd.labkit.grader+json"
HARNESS = Path(__file__).resolve().with_name("kernel_harness.py")


@dataclass
class Run:
    """What happened while one notebook was graded."""

    tests: dict = field(default_factory=dict)       # grade_id -> nonce, source, index, outcome
    timeouts: list = field(default_factory=list)    # cell labels that hit a time limit
    stopped: str | None = None                      # why later cells were not run
    crashed: bool = False
    kernel_error: str | None = None                 # the kernel (or the harness) could not start
    truncated: list = field(default_factory=list)   # cell labels whose outputs were cut
    restored: list = field(default_factory=list)    # what student cells had changed (put back before tests)
    seconds: float = 0.0
    marks: dict = field(default_factory=dict)       # wall-clock times (time.time()) of the execution's steps
    cells: list = field(default_factory=list)       # [index, label, seconds] of each code cell run


RUNS: dict = {}


def run_for(resources) -> Run:
    key = (resources["nbgrader"]["assignment"], resources["nbgrader"]["student"])
    return RUNS.setdefault(key, Run())


def error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class RestoreCellMetadata(NbGraderPreprocessor):
    """Before nbgrader's OverwriteCells: grading metadata comes from the lab, never from the submission.

    A cell whose grade id is not one of the lab's (another lab's notebook, a copy that
    DeduplicateIds emptied) loses its nbgrader metadata (nbgrader 0.9 would otherwise fail
    on it when it puts missing cells back); a known cell gets the lab's grade/solution/task
    flags back (a test cell turned into a "solution" would not be autograded).

    The notebook is brought to nbformat 4.5 first (every cell gets an id): nbgrader checks a
    cell whose type it changes back (a test cell the student turned into markdown) against
    the 4.5 schema, and a notebook saved without ids (nbformat 4.4: Colab, older JupyterLab)
    would then stop the grading with "'id' is a required property"."""

    def preprocess(self, nb, resources):
        from nbgrader.api import Gradebook

        with Gradebook(resources["nbgrader"]["db_url"]) as gb:
            notebook = gb.find_notebook(resources["nbgrader"]["notebook"], resources["nbgrader"]["assignment"])
            order = [(c.name, c.cell_type, c.locked, c.source) for c in notebook.source_cells]
            grade = {c.name: c.max_score for c in notebook.grade_cells}
            solution = {c.name for c in notebook.solution_cells}
            task = {c.name for c in notebook.task_cells}
        give_cell_ids(nb)
        known = {name for name, *_ in order}
        types = {name: cell_type for name, cell_type, *_ in order}
        for cell in nb.cells:
            name = cell.metadata.get("nbgrader", {}).get("grade_id") if isinstance(
                cell.metadata.get("nbgrader"), dict) else None
            if types.get(name) == "code" and cell.cell_type != "code":
                cell.pop("attachments", None)  # a markdown cell's images: no code cell may carry them
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader")
            if meta is None:
                continue
            name = meta.get("grade_id") if isinstance(meta, dict) else None
            if name not in known:
                del cell.metadata["nbgrader"]
            else:
                meta.update(grade=name in grade, solution=name in solution, task=name in task)
                if not meta["grade"] and not meta["task"]:
                    meta.pop("points", None)
        self._add_missing(nb, order, grade, solution, task)
        return nb, resources

    @staticmethod
    def _add_missing(nb, order, grade, solution, task):
        """Put back missing answer and read-only cells (nbgrader puts back test cells, but only after the
        cell that precedes them in the lab, so that one must exist).  An answer comes back empty."""
        present = {c.metadata.get("nbgrader", {}).get("grade_id"): i for i, c in enumerate(nb.cells)}
        previous = None
        for name, cell_type, locked, source in order:
            if name in present:
                previous = name
                continue
            if name in grade or name in task:
                continue
            if name in solution:
                text = "# (this answer cell was missing from the submission)" if cell_type == "code" else \
                    "(this answer cell was missing from the submission)"
            else:
                text = source  # a read-only cell of the lab: nothing secret in it
            meta = {"nbgrader": {"grade_id": name, "grade": False, "solution": name in solution, "task": False,
                                 "locked": locked, "schema_version": 3}}
            new = nbformat.v4.new_code_cell(text, metadata=meta) if cell_type == "code" else \
                nbformat.v4.new_markdown_cell(text, metadata=meta)
            at = present[previous] + 1 if previous in present else 0
            nb.cells.insert(at, new)
            present = {c.metadata.get("nbgrader", {}).get("grade_id"): i for i, c in enumerate(nb.cells)}
            previous = name


def give_cell_ids(nb) -> None:
    """nbformat 4.5 with an id in every cell: a missing one becomes ``cell-<index>`` (unique, and the
    same every time the same file is graded)."""
    nb.nbformat, nb.nbformat_minor = 4, max(5, nb.get("nbformat_minor", 0))
    taken = {cell.get("id") for cell in nb.cells}
    for index, cell in enumerate(nb.cells):
        if not cell.get("id"):
            new, n = f"cell-{index}", 0
            while new in taken:
                n += 1
                new = f"cell-{index}-{n}"
            cell["id"] = new
            taken.add(new)


class ProtectTests(NbGraderPreprocessor):
    """Send each graded test cell through the in-kernel harness, with a one-time nonce."""

    def preprocess(self, nb, resources):
        run = run_for(resources)
        for index, cell in enumerate(nb.cells):
            if is_test(cell):
                grade_id = cell.metadata.nbgrader["grade_id"]
                nonce = secrets.token_hex(16)
                run.tests[grade_id] = {"nonce": nonce, "source": cell.source, "index": index}
                call = ", ".join(json.dumps(v) for v in (cell.source, grade_id, nonce))
                cell.source = f"__labkit_grader__({call})"
        return nb, resources


class RestoreTests(NbGraderPreprocessor):
    """Put the test sources back; a test counts only with the harness's own 'passed' report."""

    def preprocess(self, nb, resources):
        run = run_for(resources)
        for cell in nb.cells:
            if not is_test(cell) or cell.metadata.nbgrader["grade_id"] not in run.tests:
                continue
            test = run.tests[cell.metadata.nbgrader["grade_id"]]
            cell.source = test["source"]
            reports = [o for o in cell.get("outputs", []) if o.get("output_type") == "display_data" and MIME in o.data]
            cell.outputs = [o for o in cell.get("outputs", []) if o not in reports]
            mine = [o.data[MIME] for o in reports if isinstance(o.data[MIME], dict)
                    and o.data[MIME].get("nonce") == test["nonce"]]
            errors = [o for o in cell.outputs if o.output_type == "error"]
            outcome = mine[-1] if mine else None
            if outcome is None:
                if not errors:
                    cell.outputs.append(error_output(
                        "TestDidNotRun", "the test did not report a result: its code was blocked or changed by an "
                        "earlier cell, or the kernel stopped"))
                test["outcome"] = {"passed": False, "reported": False}
            else:
                if not outcome.get("passed") and not errors:  # the student's code hid the error display
                    cell.outputs.append(error_output(str(outcome.get("ename", "Error"))[:100],
                                                     str(outcome.get("evalue", ""))[:4000]))
                test["outcome"] = {"passed": bool(outcome.get("passed")) and not errors, "reported": True,
                                   "line": outcome.get("line") if isinstance(outcome.get("line"), int) else None}
                for item in outcome.get("restored") or []:
                    if isinstance(item, str) and item[:200] not in run.restored:
                        run.restored.append(item[:200])
        return nb, resources


class LimitedKernelClient(AsyncKernelClient):
    """A kernel client whose sockets refuse messages larger than ``max_message_bytes``."""

    max_message_bytes = Integer(64 * 2**20, config=True)

    @default("context")
    def _context_default(self):
        self._created_context = True
        context = zmq.asyncio.Context()
        context.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        return context


class SandboxKernelManager(AsyncKernelManager):
    """Starts the kernel through sandbox.py, talking to it over Unix sockets in the sandbox's ipc folder."""

    sandbox_config = Unicode("", config=True, help="the sandbox.json of this kernel")
    client_class = DottedObjectName("autograder.preprocessors.LimitedKernelClient")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.sandbox_config:
            ipc_dir = json.loads(Path(self.sandbox_config).read_text())["ipc_dir"]
            self.transport = "ipc"
            self.ip = os.path.join(ipc_dir, "k")

    def format_kernel_cmd(self, extra_arguments=None):
        command = super().format_kernel_cmd(extra_arguments)
        return launcher(Path(self.sandbox_config)) + command if self.sandbox_config else command


class SandboxedExecute(Execute):
    """nbgrader's Execute with a sandboxed kernel, time limits per cell and notebook, and output caps."""

    notebook_timeout = Integer(1200, config=True, help="seconds for the whole notebook")
    interrupt_grace = Integer(10, config=True, help="seconds a kernel has to come back after an interrupt")
    output_bytes = Integer(4 * 2**20, config=True, help="outputs kept per cell")
    notebook_output_bytes = Integer(32 * 2**20, config=True, help="outputs kept per notebook")
    harness_timeout = Integer(300, config=True, help="seconds for the harness to start in the kernel")

    def __init__(self, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        kwargs.setdefault("kernel_name", "python3")
        super().__init__(**kwargs)
        self.raise_on_iopub_timeout = False  # a flood of output must not abort the notebook

    # -- the loop over cells (nbconvert's ExecutePreprocessor.preprocess, with stops)

    def preprocess(self, nb, resources=None, km=None):
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self.resources = resources
        run = self._run = run_for(resources)
        start = monotonic()
        run.marks["execute"] = time()
        self._deadline = start + self.notebook_timeout
        # nbclient's public hooks: each cell's limit (what is left of the notebook's, at most the cell's) is
        # chosen as it starts, and a timeout is told apart from an error after it ran
        self.on_cell_start = self._start_cell
        self.on_cell_executed = self._cell_executed
        self.timeout_func = lambda cell: self._cell_limit
        self._cell_bytes, self._notebook_bytes, self._bytes_cell = 0, 0, None
        try:
            with self.setup_kernel():
                info = self.wait_for_reply(self.kc.kernel_info())
                if info:
                    self.nb.metadata["language_info"] = info["content"].get("language_info", {})
                run.marks["kernel_ready"] = time()
                reply = self._run_silently(HARNESS.read_text(), self.harness_timeout)
                run.marks["harness_done"] = time()
                if reply is None or reply["content"].get("status") != "ok":
                    content = (reply or {}).get("content", {})
                    run.kernel_error = ("the grading harness did not start in the kernel: "
                                        f"{content.get('ename', 'no reply')}: {content.get('evalue', '')}")
                    run.stopped = run.kernel_error
                for index, cell in enumerate(self.nb.cells):
                    if cell.cell_type != "code" or not cell.source.strip():
                        continue
                    if run.stopped is None and monotonic() >= self._deadline:
                        run.stopped = f"the notebook reached its time limit of {self.notebook_timeout} s"
                    if run.stopped is not None:
                        cell.outputs = [error_output("NotRun", f"not run: {run.stopped}")]
                        continue
                    self._timed_out = False
                    began = monotonic()
                    try:
                        self.preprocess_cell(cell, resources, index)
                    except DeadKernelError:
                        run.crashed = True
                        run.stopped = f"the kernel died in {label(cell, index)}"
                        cell.outputs.append(error_output("KernelDied", "the kernel died while running this cell "
                                                         "(exit, crash, or a resource limit)"))
                        continue
                    finally:
                        run.cells.append([index, label(cell, index), round(monotonic() - began, 3)])
                    if self._timed_out:
                        run.timeouts.append(label(cell, index))
                        self._kill_strays()
                        if self._run_silently("pass", self.interrupt_grace) is None:
                            run.stopped = f"{label(cell, index)} did not stop when interrupted, so the kernel " \
                                          "was stopped"
                            self._kill_kernel()
                run.marks["cells_done"] = time()
                self._end_sandbox()
        except DeadKernelError:
            run.crashed = True
            run.stopped = run.stopped or "the kernel died"
        except Exception as exc:  # the kernel could not start, or the client failed: a grader-side error
            run.kernel_error = f"{type(exc).__name__}: {exc}"
            run.stopped = run.stopped or f"the kernel could not run the notebook ({run.kernel_error})"
        finally:
            for cell in self.nb.cells:  # nothing may be left looking like a clean run
                if cell.cell_type == "code" and cell.source.strip() and run.stopped and not cell.get("outputs") \
                        and cell.get("execution_count") is None:
                    cell.outputs = [error_output("NotRun", f"not run: {run.stopped}")]
            run.seconds = monotonic() - start
            run.marks["kernel_stopped"] = time()
        self.set_widgets_metadata()
        return self.nb, self.resources

    def preprocess_cell(self, cell, resources, index):
        # Test cells stay out of IPython's input history (In, _ih), where a later cell could read them.
        cell = self.execute_cell(cell, index, store_history=not is_test(cell))
        return cell, self.resources

    def _start_cell(self, cell, cell_index):
        self._cell_limit = limit = max(1, min(self.timeout or self.notebook_timeout,
                                              int(self._deadline - monotonic()) + 1))
        self.error_on_timeout = {  # what nbclient reports for the cell when it interrupts it (interrupt_on_timeout)
            "ename": "TimeLimit",
            "evalue": f"this cell ran longer than {limit} s (the time limit) and was interrupted",
            "traceback": [f"TimeLimit: this cell ran longer than {limit} s and was interrupted"],
        }

    def _cell_executed(self, cell, cell_index, execute_reply):
        # After a timeout nbclient does not wait for the kernel's reply: it gives its own, which has no header.
        self._timed_out = execute_reply is not None and "header" not in execute_reply

    def _run_silently(self, code, timeout):
        """Execute code without outputs; its reply, or None if none came within ``timeout`` s."""
        msg_id = self.kc.execute(code, silent=True, store_history=False, allow_stdin=False)
        return run_sync(self._async_reply)(msg_id, timeout)

    async def _async_reply(self, msg_id, timeout):
        deadline = monotonic() + timeout
        while (left := deadline - monotonic()) > 0:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=min(left, 1.0)))
            except Empty:
                if not await ensure_async(self.km.is_alive()):
                    return None
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg
        return None

    def _kill_strays(self):
        """Ask the sandbox's launcher (sandbox.py, on SIGUSR1) to kill every process of the sandbox but the kernel."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGUSR1)
            except OSError:
                pass

    def _end_sandbox(self, wait: float = 10.0):
        """After the last cell: end the sandbox now, as jupyter_client's graceful shutdown does after its wait.

        That shutdown asks the kernel to exit, waits half of ``shutdown_wait_time`` (2.5 s) for it (a kernel
        with torch loaded takes longer than that to finalize) and then sends SIGTERM to the kernel's process
        group, that is to the sandbox's launcher, which kills the whole tree, removes its cgroups and writes
        its report.  Every output has arrived by now and nothing of the kernel is kept, so the SIGTERM is sent
        at once; nbclient's cleanup then finds the kernel gone.  A launcher still alive after ``wait`` s is
        left to that cleanup (which ends with SIGKILL)."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is None or process.poll() is not None:
            return
        try:
            os.kill(process.pid, signal.SIGTERM)
        except OSError:
            return
        deadline = monotonic() + wait
        while process.poll() is None and monotonic() < deadline:
            sleep(0.01)

    def _kill_kernel(self):
        try:
            run_sync(self.km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001 - it is dead either way
            pass

    # -- outputs: capped as they arrive, so a flood never fills the grader's memory

    def output(self, outs, msg, display_id, cell_index):
        if cell_index != self._bytes_cell:
            self._bytes_cell, self._cell_bytes = cell_index, 0
        content = msg.get("content", {})
        if MIME in (content.get("data") or {}):
            return super().output(outs, msg, display_id, cell_index)
        size = _size(content)
        if self._cell_bytes + size > self.output_bytes or self._notebook_bytes + size > self.notebook_output_bytes:
            if not any(o.get("name") == "stdout" and "[output truncated" in o.get("text", "") for o in outs):
                outs.append(NotebookNode(output_type="stream", name="stdout",
                                         text="\n[output truncated by the grader: too much output]\n"))
                self._run.truncated.append(label(self.nb.cells[cell_index], cell_index))
            return None
        self._cell_bytes += size
        self._notebook_bytes += size
        return super().output(outs, msg, display_id, cell_index)


def _size(content) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, dict):
        return sum(_size(v) for v in content.values())
    if isinstance(content, list):
        return sum(_size(v) for v in content)
    return 8

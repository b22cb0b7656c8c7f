"""What the sandbox of a submission holds and may use: limits, binds, environment (trusted side).

``sandbox.py`` does the isolating (with bubblewrap); this module decides what goes in.  A
submission's kernel sees, read-only: /usr, the Python installation and the
virtual environment it runs from, the labkit package and the data cache (as
/data); read-write: only size-capped temporary folders that vanish with it
(/home/student holding its scratch copy, /tmp, /dev/shm).  Nothing of the
course folder is there.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from autograder.settings import KEYS

COURSE = {key: default for (table, key), (_kind, default, _what) in KEYS.items() if table == "limits"}

SANDBOX_SCRIPT = Path(__file__).resolve().with_name("sandbox.py")
HOME = "/home/student"
DATA = "/data"
# Environment variables a kernel may inherit from the grader (the rest is set from scratch).
PASS_ENV = ["NBGRADER_EXECUTION", "LABKIT_QUICK", "MPLBACKEND", "PYDEVD_DISABLE_FILE_VALIDATION",
            "JPY_SESSION_NAME", "TZ", "PYTHONHASHSEED"]
# Outside uid of a sandbox when the grader runs as root: UID_BASE + slot, where the slot is unique per worker
# of a grading run (the run's pid and the worker's number): a uid no one uses, so that the process cap of one
# submission never counts another's processes, even with two grading runs on one machine.
UID_BASE = int(os.environ.get("LABKIT_SANDBOX_UID_BASE", "1900000000"))


@dataclass
class Limits:
    """Limits of one submission's sandbox.  Times in seconds, sizes in MB."""

    # The defaults of the course settings (autograder/settings.py, course.toml [limits]) where they have one.
    cell_timeout: int = COURSE["cell_timeout"]          # wall clock per cell; interrupted, then stopped
    notebook_timeout: int = COURSE["notebook_timeout"]  # wall clock for the whole notebook
    interrupt_grace: int = 10      # after an interrupt, how long the kernel has to come back
    memory_mb: int = COURSE["memory_mb"]                # address space per process (MemoryError beyond it)
    tree_memory_mb: int = COURSE["memory_mb"] + 1024    # memory of the whole process tree (cgroup; root only)
    nproc: int = COURSE["max_procs"]                    # processes + threads (RLIMIT_NPROC)
    tree_tasks: int = 2 * COURSE["max_procs"]           # processes + threads of the whole tree (cgroup; root only)
    fsize_mb: int = 256            # largest file it may write
    scratch_mb: int = 256          # /home/student (its working folder)
    tmp_mb: int = 256              # /tmp
    shm_mb: int = 64               # /dev/shm
    nofile: int = 1024             # open files
    threads: int = COURSE["threads"]                    # OMP/MKL/OpenBLAS threads
    output_mb: int = 4             # outputs kept per cell (the rest is dropped with a note)
    notebook_output_mb: int = 32   # outputs kept per notebook
    message_mb: int = 64           # largest single kernel message accepted

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Limits:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @classmethod
    def from_settings(cls, settings, cell_timeout=None, notebook_timeout=None, memory_mb=None, nproc=None,
                      threads=None) -> Limits:
        """The course's limits (course.toml, [limits]), with what a run's options give (not None) on top; the
        whole process tree gets 1 GB more memory than one process and twice its processes."""
        memory_mb = memory_mb or settings.memory_mb
        nproc = nproc or settings.max_procs
        return cls(cell_timeout=cell_timeout or settings.cell_timeout,
                   notebook_timeout=notebook_timeout or settings.notebook_timeout, memory_mb=memory_mb,
                   tree_memory_mb=memory_mb + 1024, nproc=nproc, tree_tasks=2 * nproc,
                   threads=threads or settings.threads)


def data_dir() -> Path:
    """labkit's data cache, found as labkit.data.data_dir() finds it ($LABKIT_DATA, else ~/.cache/labkit),
    without importing labkit (and torch) into the grader; tests/test_api.py checks that the two agree."""
    return Path(os.environ.get("LABKIT_DATA") or Path.home() / ".cache" / "labkit").expanduser()


@functools.lru_cache(maxsize=1)
def kernel_labkit_dir() -> Path | None:
    """Where the kernel's Python finds labkit (asked of that Python with a clean environment, as in the
    sandbox: the grader's own sys.path may differ, e.g. it runs from a checkout)."""
    done = subprocess.run([sys.executable, "-c", "import importlib.util as u; s = u.find_spec('labkit'); "
                           "print(list(s.submodule_search_locations)[0] if s else '')"],
                          cwd="/", env={"PATH": os.environ.get("PATH", ""), "PYTHONNOUSERSITE": "1"},
                          capture_output=True, text=True, check=False)
    return Path(done.stdout.strip()).resolve() if done.returncode == 0 and done.stdout.strip() else None


def _python_dirs() -> list:
    dirs = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.executable).resolve().parent}
    if kernel_labkit_dir():
        dirs.add(kernel_labkit_dir())
    return sorted(dirs)


def binds() -> list:
    """(source, path inside, kind) for everything bound into a sandbox; kind is ro, rw or symlink."""
    out = []
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / top
        if path.is_symlink():
            out.append((os.readlink(path), f"/{top}", "symlink"))
        elif path.is_dir():
            out.append((str(path), f"/{top}", "ro"))
    out.append(("/usr", "/usr", "ro"))
    covered = [Path("/usr")]
    for path in _python_dirs():
        if not any(path == c or c in path.parents for c in covered):
            out.append((str(path), str(path), "ro"))
            covered.append(path)
    for name in ("ld.so.cache", "localtime", "nsswitch.conf"):
        if (Path("/etc") / name).exists():
            out.append((str(Path("/etc") / name), f"/etc/{name}", "ro"))
    if data_dir().is_dir():
        out.append((str(data_dir().resolve()), DATA, "ro"))
    return out


def environment(limits: Limits, home: str = HOME, data: str = DATA) -> dict:
    threads = str(limits.threads)
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": home, "USER": "student", "LOGNAME": "student", "LANG": "C.UTF-8", "TMPDIR": "/tmp",
        "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
        "NUMEXPR_NUM_THREADS": threads, "CUDA_VISIBLE_DEVICES": "", "MALLOC_ARENA_MAX": "2",
        "LABKIT_DATA": data, "LABKIT_OFFLINE": "1",
        "MPLCONFIGDIR": f"{home}/.config/matplotlib", "IPYTHONDIR": "/tmp/ipython",
        "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
    }


ETC = {
    "passwd": f"root:x:0:0:student:{HOME}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1 localhost\n",
}


class SandboxDir:
    """A short private folder in /tmp for one kernel: ipc/ (sockets, connection file, bound in) and home/
    (the scratch files, copied into the sandbox's /home/student)."""

    def __init__(self, slot: int, mode: str):
        self.uid = UID_BASE + slot if os.geteuid() == 0 and mode != "none" else None
        self.path = Path(tempfile.mkdtemp(prefix="lkg-"))
        for sub in ("ipc", "home"):
            (self.path / sub).mkdir()
        self.ipc, self.home = self.path / "ipc", self.path / "home"

    def hand_over(self) -> None:
        """Give the folder to the sandbox's uid (root only): it creates its sockets in ipc/."""
        if self.uid is not None:
            for dirpath, dirnames, filenames in os.walk(self.path):
                for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                    os.lchown(name, self.uid, self.uid)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def config(sandbox: SandboxDir, limits: Limits, mode: str, report: Path | None, stderr: Path | None) -> dict:
    if mode == "none":  # no private file system: the kernel runs in the scratch copy, on the real paths
        env = environment(limits, home=str(sandbox.home), data=str(data_dir()))
    else:
        env = environment(limits)
    return {
        "isolation": "none" if mode == "none" else "full",
        "home": HOME, "scratch": str(sandbox.home), "ipc_dir": str(sandbox.ipc),
        "binds": [*binds(), (str(sandbox.ipc), str(sandbox.ipc), "rw")],
        "etc": ETC, "env": env, "pass_env": PASS_ENV,
        "uid": sandbox.uid, "gid": sandbox.uid,
        "limits": {k: getattr(limits, k) for k in ("memory_mb", "tree_memory_mb", "nproc", "tree_tasks", "fsize_mb",
                                                    "scratch_mb", "tmp_mb", "shm_mb", "nofile")},
        "report": str(report) if report else None, "stderr": str(stderr) if stderr else None,
        "cwd": str(sandbox.home),
    }


def write_config(sandbox: SandboxDir, cfg: dict) -> Path:
    path = sandbox.path / "sandbox.json"
    path.write_text(json.dumps(cfg))
    return path


def launcher(config_path: Path) -> list:
    """The command prefix that runs a kernel command in the sandbox."""
    return [sys.executable, "-I", str(SANDBOX_SCRIPT), str(config_path), "--"]


def probe(mode: str = "full", limits: Limits | None = None) -> dict:
    """Start a sandbox with a tiny Python check inside; return what it achieved.

    Keys: ok (bool), isolation, warnings, cgroup, and what the check saw inside (uid, network,
    processes_visible, root_writable) or error."""
    limits = limits or Limits()
    sandbox = SandboxDir(0, mode)
    try:
        cfg = config(sandbox, limits, mode, report=None, stderr=sandbox.path / "stderr.log")
        sandbox.hand_over()
        done = subprocess.run([sys.executable, "-I", str(SANDBOX_SCRIPT), str(write_config(sandbox, cfg)), "--probe"],
                              capture_output=True, text=True, timeout=120, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        result = {"isolation": cfg["isolation"]}
        if len(lines) == 2:
            result.update(json.loads(lines[0]))
            result.update({k: v for k, v in json.loads(lines[1]).items() if k in ("warnings", "cgroup", "exit_code")})
        else:
            stderr = (sandbox.path / "stderr.log").read_text(errors="replace") if \
                (sandbox.path / "stderr.log").exists() else ""
            result["error"] = (done.stdout + done.stderr + stderr).strip()[-2000:] or "no output"
            if lines:
                result.update({k: v for k, v in json.loads(lines[-1]).items() if k in ("warnings", "exit_code")})
        result["ok"] = "error" not in result and result.get("exit_code") == 0 and (
            mode == "none" or (result.get("network", "").startswith("blocked") and not result.get("root_writable")))
        return result
    finally:
        sandbox.remove()


def describe(probe_result: dict) -> str:
    """One line for the instructor: what the sandbox of each submission gets."""
    if probe_result.get("isolation") == "none":
        return "NOT SANDBOXED: submissions run with your rights, with resource limits only"
    if not probe_result.get("ok"):
        return f"sandbox unavailable: {probe_result.get('error') or probe_result.get('warnings')}"
    parts = ["own user/mount/PID/network namespaces", f"network {probe_result.get('network')}",
             "private read-only root file system", f"cgroup: {probe_result.get('cgroup', 'not used')}"]
    parts += probe_result.get("warnings") or []
    return "; ".join(parts)

"""Start one command (a Jupyter kernel) in a sandbox: `python sandbox.py CONFIG.json -- COMMAND...`.

Standalone on purpose (standard library only, run with ``python -I``): it is the
kernel command of the grading workers, started by jupyter_client, and must not
import anything a student could influence.

The isolation is bubblewrap's (Debian's ``bubblewrap``, ``bwrap``; see
``bwrap_args``): new user, mount, PID, network, IPC, UTS and cgroup namespaces;
inside, uid 0 of the namespace with no capabilities and ``no_new_privs``, mapped
outside to an unprivileged uid (a per-worker uid when the grader runs as root,
the instructor's own otherwise); no further user namespaces; a private root file
system: a read-only tmpfs holding read-only binds of /usr, the Python
installation, the virtual environment, the labkit package and the data cache,
bubblewrap's minimal /dev, a new /proc, and size-capped tmpfs for /tmp,
/dev/shm and the working folder /home/student (holding a copy of the scratch
files); a network namespace with only its own loopback; the kernel talks to its
client over Unix sockets in a folder bound in; the whole tree dies with this
launcher.  The config (``autograder.isolation``) says what to bind.

What this launcher adds, which bubblewrap does not do:

- resource limits (address space, processes, file size, open files, no core
  dumps), set on bubblewrap and so on everything it starts; as root, a memory
  and a pids cgroup for the whole tree, and a report of whether the memory cap
  was hit;
- as root: the switch to the sandbox's uid, and the bind sources that uid could
  not reach (e.g. a Python under /root) bound, still as root, into a private
  staging folder that bubblewrap binds from (bubblewrap 0.8 resolves every
  source path as the uid it runs as);
- on SIGUSR1, the kernel's stray processes (what a timed-out cell left running,
  a fork bomb's children) are stopped and killed; SIGTERM ends the whole tree;
- when the command ends, a JSON report (exit status, signal, memory cap) for
  the trusted grader.

``python sandbox.py CONFIG.json --probe`` runs a short Python check inside and
prints what the sandbox achieved, as JSON.
"""
import ctypes
import json
import os
import resource
import shutil
import signal
import sys
import time

CLONE_NEWNS, MS_BIND, MS_REC, MS_PRIVATE = 0x00020000, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
KERNEL = 2  # the command's pid inside the sandbox: bubblewrap's reaper is 1, what it starts is 2
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def main(argv) -> int:
    config_path, rest = argv[0], argv[1:]
    with open(config_path) as f:
        cfg = json.load(f)
    probe = rest == ["--probe"]
    command = [sys.executable, "-I", "-c", PROBE] if probe else rest[1:] if rest[:1] == ["--"] else rest
    if not command:
        sys.exit("usage: sandbox.py CONFIG.json -- COMMAND ... | --probe")
    command = _relocate_connection_file(command, cfg)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts are for the kernel, which gets them from its group
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")  # the worker died: so does the tree

    isolated = cfg.get("isolation") != "none"
    report = {"isolation": "full" if isolated else "none", "warnings": [], "started": time.time()}
    bwrap = shutil.which("bwrap", path=cfg.get("bwrap_path") or "/usr/bin:/bin")
    if isolated and not bwrap:
        report["warnings"].append("bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
        return _finish(cfg, report, probe, {"exit_code": 125})
    cgroups = _make_cgroups(cfg, report) if isolated else []
    if cfg.get("uid") is None:  # our own uid: RLIMIT_NPROC also counts the instructor's other tasks
        cfg["nproc_baseline"] = _count_tasks(os.getuid())
    info_r, info_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(info_r)
        _child(cfg, command, bwrap, cgroups, info_w, keep_stdout=probe)  # never returns
    os.close(info_w)
    namespace = {}

    def stop(signum, frame):  # jupyter_client's terminate: end the whole tree now
        _kill(pid)
        for path in cgroups:
            _kill_cgroup(path)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, lambda *_: _kill_strays(namespace.get("pid-namespace")))
    if isolated:
        namespace.update(_read_info(info_r))
    os.close(info_r)
    _, status = _waitpid(pid)
    exit_report = _exit_report(status)
    stderr = cfg.get("stderr")
    if exit_report.get("exit_code") and stderr and os.path.exists(stderr):
        with open(stderr, errors="replace") as f:
            problems = [line.strip() for line in f if line.startswith(("bwrap:", "sandbox:"))]
        report["warnings"] += problems[-3:]
    report.update(_cgroup_report(cgroups))
    for path in cgroups:
        _kill_cgroup(path)
        _remove_cgroup(path)
    return _finish(cfg, report, probe, exit_report)


def _finish(cfg, report, probe, exit_report) -> int:
    report.update(exit_report)
    report["ended"] = time.time()
    if cfg.get("report"):
        tmp = f"{cfg['report']}.partial"
        with open(tmp, "w") as f:
            json.dump(report, f)
        os.replace(tmp, cfg["report"])
    if probe:
        print(json.dumps(report))
    return report.get("exit_code", 1)


def _relocate_connection_file(command, cfg):
    """Copy the kernel's connection file (-f PATH) into the bound IPC folder, where the kernel sees it."""
    if "-f" in command and cfg.get("ipc_dir"):
        i = command.index("-f") + 1
        inside = os.path.join(cfg["ipc_dir"], "connection.json")
        with open(command[i], "rb") as src, open(inside, "wb") as dst:
            dst.write(src.read())
        if cfg.get("uid") is not None:
            os.chown(inside, cfg["uid"], cfg.get("gid", cfg["uid"]))
        os.chmod(inside, 0o600)
        command = [*command[:i], inside, *command[i + 1:]]
    return command


# ---------------------------------------------------------------------------- the child: limits, then bwrap

def _child(cfg, command, bwrap, cgroups, info_fd, keep_stdout):
    try:
        for path in cgroups:
            _write(os.path.join(path, "cgroup.procs"), str(os.getpid()))
        isolated = cfg.get("isolation") != "none"
        passed = [info_fd]
        if isolated:
            sources = _stage(cfg) if cfg.get("uid") is not None else {}
            args, fds = bwrap_args(cfg, command, sources, info_fd)
            passed += fds
            program, env = bwrap, _environment(cfg)
        else:
            os.chdir(cfg.get("cwd", "/"))
            program, args, env = command[0], command, _environment(cfg)
        _redirect(cfg, keep_stdout, passed)
        _set_limits(cfg)
        if cfg.get("uid") is not None:
            os.setgroups([])
            os.setresgid(cfg["gid"], cfg["gid"], cfg["gid"])
            os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
        for signum in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(signum, signal.SIG_DFL)  # SIGINT stays ignored up to the kernel, which sets its own
        os.execve(program, args, env)
    except BaseException as exc:  # noqa: BLE001 - say why in the kernel's log, then die
        try:
            os.write(2, f"sandbox: could not start {command[0]}: {exc}\n".encode())
        except OSError:
            pass
    os._exit(127)


def bwrap_args(cfg, command, sources, info_fd) -> tuple:
    """bubblewrap's command line for ``cfg``, and the descriptors it reads (``sources``: staged bind paths)."""
    limits = cfg.get("limits", {})
    mb = 2**20
    home = cfg.get("home", "/home/student")
    args = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--uid", "0", "--gid", "0",
            "--hostname", "sandbox", "--die-with-parent", "--cap-drop", "ALL",
            "--proc", "/proc", "--dev", "/dev",
            "--size", str(limits.get("shm_mb", 64) * mb), "--perms", "1777", "--tmpfs", "/dev/shm",
            "--size", str(limits.get("tmp_mb", 256) * mb), "--perms", "1777", "--tmpfs", "/tmp"]
    fds = [info_fd]
    for source, inside, kind in cfg.get("binds", []):
        if kind == "symlink":  # source is the link's text
            args += ["--symlink", source, inside]
        else:
            args += ["--ro-bind" if kind == "ro" else "--bind", sources.get(source, source), inside]
    for name, text in cfg.get("etc", {}).items():
        fd = _data_fd(text)
        fds.append(fd)
        args += ["--ro-bind-data", str(fd), f"/etc/{name}"]
    args += ["--size", str(limits.get("scratch_mb", 256) * mb), "--perms", "0755", "--tmpfs", home]
    scratch = cfg.get("scratch")
    for folder, dirs, files in os.walk(scratch) if scratch else ():
        inside = home if folder == scratch else os.path.join(home, os.path.relpath(folder, scratch))
        args += [arg for d in sorted(dirs) for arg in ("--dir", f"{inside}/{d}")]
        for name in sorted(files):
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                fd = os.open(path, os.O_RDONLY)
                fds.append(fd)
                args += ["--file", str(fd), f"{inside}/{name}"]
    args += ["--remount-ro", "/", "--chdir", home, "--info-fd", str(info_fd), "--", *command]
    return args, fds


def _stage(cfg) -> dict:
    """As root, before switching to the sandbox's uid: bind every bind source into a private staging folder
    (a mount namespace of our own), where that uid can reach it; {source: staged path}."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare")
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    stage = os.path.join(os.path.dirname(cfg["ipc_dir"]), "stage")
    os.makedirs(stage, exist_ok=True)
    staged = {}
    for number, (source, _inside, kind) in enumerate(cfg.get("binds", [])):
        if kind == "symlink" or not os.path.exists(source):
            continue
        target = os.path.join(stage, str(number))
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        else:
            open(target, "a").close()
        _check(_libc.mount(os.fsencode(source), os.fsencode(target), None, MS_BIND | MS_REC, None),
               f"bind {source}")
        staged[source] = target
    os.chown(stage, cfg["uid"], cfg["gid"])
    return staged


def _data_fd(text: str) -> int:
    fd = os.memfd_create("sandbox-etc", 0)
    os.write(fd, text.encode())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _redirect(cfg, keep_stdout, passed):
    """stdin and (unless probing) stdout to /dev/null, stderr to the kernel's log; only ``passed`` fds stay."""
    null = os.open(os.devnull, os.O_RDWR)
    err = os.open(cfg["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if cfg.get("stderr") else null
    os.dup2(null, 0)
    if not keep_stdout:
        os.dup2(null, 1)
    os.dup2(err, 2)
    keep = set(passed) | {0, 1, 2}
    for fd in passed:
        os.set_inheritable(fd, True)
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _environment(cfg) -> dict:
    env = dict(cfg.get("env", {}))
    env.update({key: os.environ[key] for key in cfg.get("pass_env", []) if key in os.environ})
    return env


def _set_limits(cfg):
    limits, mb = cfg.get("limits", {}), 2**20
    wanted = {resource.RLIMIT_CORE: 0}
    if limits.get("memory_mb"):
        wanted[resource.RLIMIT_AS] = limits["memory_mb"] * mb
    if limits.get("fsize_mb"):
        wanted[resource.RLIMIT_FSIZE] = limits["fsize_mb"] * mb
    if limits.get("nofile"):
        wanted[resource.RLIMIT_NOFILE] = limits["nofile"]
    if limits.get("nproc"):  # counted per uid: add what the uid already runs when it is not ours alone
        wanted[resource.RLIMIT_NPROC] = limits["nproc"] + cfg.get("nproc_baseline", 0)
    for which, value in wanted.items():
        _, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))


# ---------------------------------------------------------------------------- cgroups (root only)

def _make_cgroups(cfg, report):
    """A memory and a pids cgroup for the whole tree, when we may create them (root, cgroup v1 or v2)."""
    limits = cfg.get("limits", {})
    tree_mb, tasks = limits.get("tree_memory_mb"), limits.get("tree_tasks")
    if os.geteuid() != 0 or not (tree_mb or tasks):
        report["cgroup"] = "not used (needs root)" if os.geteuid() != 0 else "not used"
        return []
    name = f"labkit-sandbox-{os.getpid()}"
    made = []
    try:
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # v2
            try:
                _write("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids")
            except OSError:
                pass
            path = os.path.join("/sys/fs/cgroup", name)
            os.mkdir(path)
            made.append(path)
            if tree_mb:
                _write(os.path.join(path, "memory.max"), str(tree_mb * 2**20))
                _try_write(os.path.join(path, "memory.swap.max"), "0")
            if tasks:
                _write(os.path.join(path, "pids.max"), str(tasks))
        else:  # v1
            for controller, files in (("memory", {"memory.limit_in_bytes": tree_mb and tree_mb * 2**20,
                                                  "memory.memsw.limit_in_bytes": tree_mb and tree_mb * 2**20}),
                                      ("pids", {"pids.max": tasks})):
                if not any(files.values()):
                    continue
                path = os.path.join("/sys/fs/cgroup", controller, name)
                os.mkdir(path)
                made.append(path)
                for file, value in files.items():
                    if value:
                        _try_write(os.path.join(path, file), str(value))
        report["cgroup"] = f"memory {tree_mb} MB and {tasks} tasks for the whole tree"
    except OSError as exc:
        report["cgroup"] = f"unavailable ({exc.strerror or exc})"
        for path in made:
            _remove_cgroup(path)
        made = []
    return made


def _cgroup_report(paths):
    for path in paths:
        for name in ("memory.events", "memory.oom_control"):
            try:
                with open(os.path.join(path, name)) as f:
                    if any(line.split()[:1] == ["oom_kill"] and int(line.split()[1]) > 0 for line in f):
                        return {"memory_cap_hit": True}
            except (OSError, ValueError, IndexError):
                pass
        try:
            with open(os.path.join(path, "memory.failcnt")) as f:
                if int(f.read().strip() or 0) > 0:
                    return {"memory_cap_hit": True}
        except (OSError, ValueError):
            pass
    return {}


def _kill_cgroup(path):
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            for line in f:
                _signal(int(line), signal.SIGKILL)
    except (OSError, ValueError):
        pass


def _remove_cgroup(path):
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


# ---------------------------------------------------------------------------- the kernel's strays

def _read_info(fd) -> dict:
    """bubblewrap's --info-fd JSON (the namespaces), once it has started the command; {} if it did not."""
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        data += chunk
        try:
            return json.loads(data)
        except ValueError:
            continue
    return {}


def sandbox_processes(namespace) -> dict:
    """{pid outside: pid inside} of every live process in the sandbox's PID namespace."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/pid").st_ino != namespace:
                continue
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        except (OSError, ValueError):
            continue
        if fields.get("State", "")[:1] not in ("Z", "X"):
            out[int(entry)] = int(fields["NSpid"].split()[-1])
    return out


def _kill_strays(namespace):
    """Kill every process of the sandbox but bubblewrap's reaper and the kernel (what a timed-out cell left
    running, e.g. a fork bomb's children), so that the kernel gets the machine back.  Passes repeat until one
    finds nothing alive (children forked during a pass are caught by the next), for at most 2 s."""
    if not namespace:
        return
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        strays = [pid for pid, inside in sandbox_processes(namespace).items() if inside > KERNEL]
        if not strays:
            return
        for pid in strays:
            _signal(pid, signal.SIGSTOP)  # stopped first: a stopped process cannot fork any more
        for pid in strays:
            _signal(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------- small helpers

def _exit_report(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return {"exit_code": 128 + sig, "signal": signal.Signals(sig).name}
    code = os.WEXITSTATUS(status)
    if code > 128 and code - 128 < signal.NSIG:  # the command's death by signal, passed on as 128 + signal
        try:
            return {"exit_code": code, "signal": signal.Signals(code - 128).name}
        except ValueError:
            pass
    return {"exit_code": code}


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _try_write(path, text):
    try:
        _write(path, text)
    except OSError:
        pass


def _waitpid(pid):
    while True:
        try:
            return os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return -1, 0


def _count_tasks(uid):
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                pass
    return count


def _signal(pid, signum):
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def _kill(pid):
    _signal(pid, signal.SIGKILL)


# Run inside by --probe: what can a student cell see and do?
PROBE = r"""
import json, os, socket, sys
out = {"uid": os.getuid(), "pid": os.getpid(), "cwd": os.getcwd(), "python": sys.executable}
try:
    socket.create_connection(("1.1.1.1", 53), timeout=1).close(); out["network"] = "open"
except OSError as exc:
    out["network"] = f"blocked ({exc.strerror or exc})"
try:
    out["processes_visible"] = len([p for p in os.listdir("/proc") if p.isdigit()])
except OSError:
    out["processes_visible"] = None
try:
    open("/probe-write", "w").close(); out["root_writable"] = True
except OSError:
    out["root_writable"] = False
with open("/proc/self/status") as status:
    out["capabilities"] = [line.split()[1] for line in status if line.startswith("CapEff")][0]
out["omp_threads"] = os.environ.get("OMP_NUM_THREADS")
out["gpus_visible"] = os.environ.get("CUDA_VISIBLE_DEVICES") != "" or any(
    name.startswith(("nvidia", "dri", "kfd")) for name in os.listdir("/dev"))
out["home"] = sorted(os.listdir(os.path.expanduser("~")))
print(json.dumps(out))
"""

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Start one command (a Jupyter kernel) in a sandbox: `python sandbox.py CONFIG.json -- COMMAND...`.

Standalone on purpose (standard library only, run with ``python -I``): it is the
kernel command of the grading workers, started by jupyter_client, and must not
import anything a student could influence.

What the command gets (see ``autograder.isolation`` for who writes CONFIG.json):

- its own user, mount, network, PID, IPC and UTS namespaces.  Inside, the
  command runs as uid 0 *of the namespace* with no capabilities (empty
  bounding set, no_new_privs), mapped outside to an unprivileged uid: a
  per-worker uid when the grader runs as root, the instructor's own uid
  otherwise;
- a private root file system: a tmpfs holding read-only binds of /usr, the
  Python installation, the virtual environment, the labkit package and the data
  cache, a minimal /dev and /etc, a new /proc, and size-capped tmpfs for /tmp,
  /dev/shm and the working folder /home/student (a copy of the scratch files).
  The host tree is unmounted (pivot_root), so the course folder, the gradebook,
  the solutions and other students' files do not exist in there;
- a network namespace with only a loopback interface, left down: no network at
  all.  The kernel talks to its client over Unix sockets (ZMQ ipc transport) in
  a folder bound into the sandbox;
- resource limits: address space per process (RLIMIT_AS), processes/threads
  (RLIMIT_NPROC), file size, open files, no core dumps; and, when the launcher
  runs as root and cgroups are writable, a memory and pids cap on the whole
  process tree;
- a clean environment (CONFIG's ``env`` only).

The launcher (this process) stays outside: it writes the namespace's uid map,
moves the tree into its cgroup, forwards SIGTERM, and when the command ends
writes a JSON report (exit status, whether the memory cap was hit) for the
trusted grader.  Killing the launcher kills the whole tree (PR_SET_PDEATHSIG,
then the end of the PID namespace).

``python sandbox.py CONFIG.json --probe`` runs a short Python check inside and
prints what the sandbox achieved, as JSON.
"""
import ctypes
import json
import os
import platform
import resource
import signal
import stat
import sys
import time

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_RELATIME = 1024, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
DEVICES = ("null", "zero", "full", "random", "urandom")
# statvfs flags that a bind remount must keep (they are locked in a user namespace)
ST_FLAGS = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC,
            os.ST_NOATIME: MS_NOATIME, os.ST_RELATIME: MS_RELATIME}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(text):
    return None if text is None else os.fsencode(text)


def mount(source, target, fstype=None, flags=0, data=None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


def prctl(option: int, arg: int = 0) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl({option})")


def pivot_root(new_root: str, put_old: str) -> None:
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {platform.machine()}")
    _check(_libc.syscall(number, _b(new_root), _b(put_old)), "pivot_root")


# ---------------------------------------------------------------------------- the launcher (outside)

def main(argv) -> int:
    config_path, rest = argv[0], argv[1:]
    with open(config_path) as f:
        cfg = json.load(f)
    probe = rest == ["--probe"]
    command = [sys.executable, "-I", "-c", PROBE] if probe else rest[1:] if rest[:1] == ["--"] else rest
    cfg["keep_stdout"] = probe
    if not command:
        sys.exit("usage: sandbox.py CONFIG.json -- COMMAND ... | --probe")
    command = _relocate_connection_file(command, cfg)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts are for the kernel, which gets them from its group
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # "kill the kernel's strays", passed down to PID 1 below
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the grading worker died: so do we, and the whole tree with us

    report = {"isolation": cfg.get("isolation", "full"), "warnings": [], "started": time.time()}
    stderr_fd = os.open(cfg["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if cfg.get("stderr") \
        else os.open(os.devnull, os.O_WRONLY)
    cgroups = _make_cgroups(cfg, report) if cfg.get("isolation") != "none" else []
    if cfg.get("uid") is None:  # our own uid: RLIMIT_NPROC also counts the instructor's other tasks
        cfg["nproc_baseline"] = _count_tasks(os.getuid())

    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: namespaces, then PID 1, then the command
        os.close(to_child_w)
        os.close(from_child_r)
        _child(cfg, command, stderr_fd, to_child_r, from_child_w)  # never returns

    os.close(to_child_r)
    os.close(from_child_w)

    def stop(signum, frame):  # jupyter_client's terminate: end the whole tree now
        _kill(pid)
        for path in cgroups:
            _kill_cgroup(path)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, lambda *_: _signal(pid, signal.SIGUSR1))

    message = _read_line(from_child_r)
    if message.startswith("unshared"):
        try:
            _write_id_maps(pid, cfg)
            for path in cgroups:
                _write(os.path.join(path, "cgroup.procs"), str(pid))
            os.write(to_child_w, b"go\n")
        except OSError as exc:
            report["warnings"].append(f"could not set up the user namespace: {exc}")
            _kill(pid)
    elif message:
        report["warnings"].append(message)
    rest_of_messages = _read_all(from_child_r)
    for line in filter(None, rest_of_messages.splitlines()):
        report["warnings"].append(line)
    _, status = _waitpid(pid)
    report.update(_exit_report(status))
    report.update(_cgroup_report(cgroups))
    for path in cgroups:
        _kill_cgroup(path)
        _remove_cgroup(path)
    report["ended"] = time.time()
    if cfg.get("report"):
        _write_json(cfg["report"], report)
    if probe:
        print(json.dumps(report))
    return report.get("exit_code", 1)


def _relocate_connection_file(command, cfg):
    """Copy the kernel's connection file (-f PATH) into the bound IPC folder, where the kernel sees it."""
    if "-f" in command and cfg.get("ipc_dir"):
        i = command.index("-f") + 1
        inside = os.path.join(cfg["ipc_dir"], "connection.json")
        with open(command[i], "rb") as src:
            data = src.read()
        with open(inside, "wb") as dst:
            dst.write(data)
        if cfg.get("uid") is not None:
            os.chown(inside, cfg["uid"], cfg.get("gid", cfg["uid"]))
        os.chmod(inside, 0o600)
        command = [*command[:i], inside, *command[i + 1:]]
    return command


def _open_sources(cfg, warn):
    """O_PATH descriptors of every bind source, opened in the new mount namespace while we still
    have the launcher's uid: the sandbox's own uid may not walk to them (e.g. under /root)."""
    fds = {}
    for source, _inside, kind in cfg.get("binds", []):
        if kind == "symlink":
            continue
        try:
            fds[source] = os.open(source, os.O_PATH)
        except OSError as exc:
            warn(f"bind source {source} unavailable: {exc.strerror}")
    for name in DEVICES:
        try:
            fds[f"/dev/{name}"] = os.open(f"/dev/{name}", os.O_PATH)
        except OSError:
            pass
    return fds


def _write_id_maps(pid, cfg):
    outside_uid = cfg.get("uid") if cfg.get("uid") is not None else os.getuid()
    outside_gid = cfg.get("gid") if cfg.get("gid") is not None else os.getgid()
    _write(f"/proc/{pid}/setgroups", "deny")
    _write(f"/proc/{pid}/uid_map", f"0 {outside_uid} 1")
    _write(f"/proc/{pid}/gid_map", f"0 {outside_gid} 1")


def _exit_report(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return {"exit_code": 128 + sig, "signal": signal.Signals(sig).name}
    code = os.WEXITSTATUS(status)
    if code > 128 and code - 128 < signal.NSIG:  # PID 1 passes the command's death by signal on as 128 + signal
        try:
            return {"exit_code": code, "signal": signal.Signals(code - 128).name}
        except ValueError:
            pass
    return {"exit_code": code}


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
            if tree_mb:
                path = os.path.join("/sys/fs/cgroup/memory", name)
                os.mkdir(path)
                made.append(path)
                _write(os.path.join(path, "memory.limit_in_bytes"), str(tree_mb * 2**20))
                _try_write(os.path.join(path, "memory.memsw.limit_in_bytes"), str(tree_mb * 2**20))
            if tasks:
                path = os.path.join("/sys/fs/cgroup/pids", name)
                os.mkdir(path)
                made.append(path)
                _write(os.path.join(path, "pids.max"), str(tasks))
        report["cgroup"] = f"memory {tree_mb} MB and {tasks} tasks for the whole tree"
    except OSError as exc:
        report["cgroup"] = f"unavailable ({exc.strerror or exc})"
        for path in made:
            _remove_cgroup(path)
        made = []
    return made


def _cgroup_report(paths):
    out = {}
    for path in paths:
        for name in ("memory.events", "memory.oom_control"):
            try:
                with open(os.path.join(path, name)) as f:
                    for line in f:
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            out["memory_cap_hit"] = True
            except OSError:
                pass
        try:
            with open(os.path.join(path, "memory.failcnt")) as f:
                if int(f.read().strip() or 0) > 0:
                    out["memory_cap_hit"] = True
        except OSError:
            pass
    return out


def _kill_cgroup(path):
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            for line in f:
                try:
                    os.kill(int(line), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
    except OSError:
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


# ---------------------------------------------------------------------------- the child (inside)

def _child(cfg, command, stderr_fd, from_parent, to_parent):
    code = 1
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the launcher died before we got here
            os._exit(1)
        if cfg.get("isolation") == "none":
            os.write(to_parent, b"not sandboxed\n")
            code = _run_command(cfg, command, stderr_fd, isolated=False)
            os._exit(code)
        flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
        try:
            _check(_libc.unshare(flags), "unshare")
        except OSError as exc:
            os.write(to_parent, f"namespaces unavailable: {exc}\n".encode())
            os._exit(125)
        os.write(to_parent, b"unshared\n")
        if _read_line(from_parent) != "go":
            os._exit(125)
        fds = _open_sources(cfg, lambda text: os.write(to_parent, (text + "\n").encode()))
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        init = os.fork()  # the first child in the new PID namespace is its PID 1
        if init == 0:
            _pid1(cfg, command, fds, stderr_fd, to_parent)  # never returns
        signal.signal(signal.SIGTERM, lambda *_: _kill(init))
        signal.signal(signal.SIGUSR1, lambda *_: _signal(init, signal.SIGUSR1))
        _, status = _waitpid(init)
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    except BaseException as exc:  # noqa: BLE001 - report anything to the launcher, then die
        try:
            os.write(to_parent, f"sandbox setup failed: {exc}\n".encode())
        except OSError:
            pass
    os._exit(code)


def _pid1(cfg, command, fds, stderr_fd, to_parent):
    """PID 1 of the namespace: build the file system, start the command, reap, exit with its status."""
    code = 1
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        warnings = _build_root(cfg, fds)
        for fd in fds.values():  # handles on host folders: of no use any more, and not to be inherited
            os.close(fd)
        prctl(PR_SET_DUMPABLE, 0)  # the command may not read our memory, environment or descriptors
        for warning in warnings:
            os.write(to_parent, (warning + "\n").encode())
        kernel = os.fork()
        if kernel == 0:
            try:
                os.close(to_parent)
                os._exit(_run_command(cfg, command, stderr_fd, isolated=True))
            except BaseException as exc:  # noqa: BLE001
                os.write(stderr_fd, f"sandbox: could not start {command[0]}: {exc}\n".encode())
                os._exit(127)
        os.close(to_parent)
        os.close(stderr_fd)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
        signal.signal(signal.SIGUSR1, lambda *_: _kill_strays(kernel))
        while True:  # reap everything; end (and with us the namespace) when the command ends
            pid, status = _waitpid(-1)
            if pid in (kernel, -1):
                code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
                break
    except BaseException as exc:  # noqa: BLE001
        try:
            os.write(to_parent, f"sandbox setup failed: {exc}\n".encode())
        except OSError:
            pass
    os._exit(code)


def _build_root(cfg, fds):
    """Mount the sandbox's file system on a tmpfs at cfg['root'] and pivot into it."""
    warnings = []
    root = cfg["root"]
    limits = cfg.get("limits", {})
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=755")
    # /dev: a few harmless devices, no GPU, no terminals
    dev = root + "/dev"
    _makedirs(dev)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
    for name in DEVICES:
        if f"/dev/{name}" in fds:
            open(f"{dev}/{name}", "a").close()
            mount(f"/proc/self/fd/{fds[f'/dev/{name}']}", f"{dev}/{name}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")
    _tmpfs(dev + "/shm", limits.get("shm_mb", 64), "1777")
    _tmpfs(root + "/tmp", limits.get("tmp_mb", 256), "1777")  # before the binds: the ipc folder lives in it
    for source, inside, kind in cfg.get("binds", []):
        target = root + inside
        if kind == "symlink":  # source is the link's text
            _makedirs(os.path.dirname(target))
            os.symlink(source, target)
            continue
        if source not in fds:
            continue
        proc_path = f"/proc/self/fd/{fds[source]}"
        is_dir = stat.S_ISDIR(os.stat(fds[source]).st_mode)
        _makedirs(target if is_dir else os.path.dirname(target))
        if not is_dir:
            open(target, "a").close()
        mount(proc_path, target, None, MS_BIND | MS_REC)
        if kind == "ro":
            _remount_readonly(target)
    home = cfg.get("home", "/home/student")
    _tmpfs(root + home, limits.get("scratch_mb", 256), "755")
    if cfg.get("scratch"):
        _copy_tree(cfg["scratch"], root + home)
    for name, text in cfg.get("etc", {}).items():
        _makedirs(root + "/etc")
        with open(f"{root}/etc/{name}", "w") as f:
            f.write(text)
    _makedirs(root + "/proc")
    try:
        mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError as exc:
        warnings.append(f"no /proc in the sandbox ({exc.strerror})")
    _makedirs(root + "/.old-root")
    os.chdir(root)
    pivot_root(".", ".old-root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old-root", MNT_DETACH), "umount old root")
    os.rmdir("/.old-root")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return warnings


def _remount_readonly(target):
    """Remount a bind and every mount below it read-only, keeping the flags the kernel locked."""
    targets = [target]
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = _unescape(line.split()[4])
                if point.startswith(target + "/"):
                    targets.append(point)
    except OSError:
        pass
    for point in targets:
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        current = os.statvfs(point).f_flag
        for st_flag, ms_flag in ST_FLAGS.items():
            if current & st_flag:
                flags |= ms_flag
        mount(None, point, None, flags)


def _unescape(field):
    """/proc/self/mountinfo writes space, tab, newline and backslash as \\ooo (octal).
    (No codec lookups here: after the uid switch the standard library may be out of reach.)"""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _tmpfs(path, size_mb, mode):
    _makedirs(path)
    mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={int(size_mb)}m,mode={mode}")


def _copy_tree(source, target):
    for name in os.listdir(source):
        src, dst = os.path.join(source, name), os.path.join(target, name)
        if os.path.islink(src):
            continue
        if os.path.isdir(src):
            os.makedirs(dst, exist_ok=True)
            _copy_tree(src, dst)
        else:
            with open(src, "rb") as fin, open(dst, "wb") as fout:
                while chunk := fin.read(1 << 20):
                    fout.write(chunk)


def _makedirs(path):
    os.makedirs(path, mode=0o755, exist_ok=True)


def _run_command(cfg, command, stderr_fd, isolated):
    """In the final process: limits, no privileges, clean environment, then exec."""
    limits = cfg.get("limits", {})
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    if not cfg.get("keep_stdout"):
        os.dup2(null, 1)
    os.dup2(stderr_fd, 2)
    os.closerange(3, 65536)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_DFL)
    mb = 2**20
    _set_limit(resource.RLIMIT_CORE, 0)
    if limits.get("memory_mb"):
        _set_limit(resource.RLIMIT_AS, limits["memory_mb"] * mb)
    if limits.get("fsize_mb"):
        _set_limit(resource.RLIMIT_FSIZE, limits["fsize_mb"] * mb)
    if limits.get("nofile"):
        _set_limit(resource.RLIMIT_NOFILE, limits["nofile"])
    if limits.get("cpu_s"):
        _set_limit(resource.RLIMIT_CPU, limits["cpu_s"])
    if limits.get("nproc"):  # counted per uid: add what the uid already runs when it is not ours alone
        _set_limit(resource.RLIMIT_NPROC, limits["nproc"] + cfg.get("nproc_baseline", 0))
    if isolated:
        last_cap = cfg.get("cap_last_cap", 40)
        for cap in range(last_cap + 1):
            try:
                prctl(PR_CAPBSET_DROP, cap)
            except OSError:
                pass
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    os.chdir(cfg.get("home", "/home/student") if isolated else cfg.get("cwd", "/"))
    env = dict(cfg.get("env", {}))
    env.update({key: os.environ[key] for key in cfg.get("pass_env", []) if key in os.environ})
    os.execve(command[0], command, env)
    return 127  # not reached


def _set_limit(which, value):
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


# ---------------------------------------------------------------------------- small helpers

def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _try_write(path, text):
    try:
        _write(path, text)
    except OSError:
        pass


def _write_json(path, data):
    tmp = f"{path}.partial"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _read_line(fd):
    data = b""
    while not data.endswith(b"\n"):
        try:
            chunk = os.read(fd, 1)
        except InterruptedError:
            continue
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def _read_all(fd):
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            return b"".join(chunks).decode(errors="replace")
        chunks.append(chunk)


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


def _kill_strays(kernel):
    """In PID 1: kill every process of the namespace but the kernel (what a timed-out cell left running,
    e.g. the children of a fork bomb), so that the kernel gets the machine back.  Passes repeat until one
    finds nothing alive (children forked during a pass are caught by the next), for at most 2 s."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            entries = os.listdir("/proc")
        except OSError:
            return
        alive = [int(e) for e in entries if e.isdigit() and int(e) not in (1, kernel) and not _zombie(int(e))]
        if not alive:
            return
        for pid in alive:
            _signal(pid, signal.SIGSTOP)  # stopped first: a stopped process cannot fork any more
        for pid in alive:
            _kill(pid)


def _zombie(pid) -> bool:
    """Dead and waiting to be reaped (by our main loop): nothing left to kill."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as status:
            return status.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _signal(pid, signum):
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


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
out["omp_threads"] = os.environ.get("OMP_NUM_THREADS")
out["gpus_visible"] = os.environ.get("CUDA_VISIBLE_DEVICES") != "" or any(
    name.startswith(("nvidia", "dri", "kfd")) for name in os.listdir("/dev"))
out["home"] = sorted(os.listdir(os.path.expanduser("~")))
print(json.dumps(out))
"""

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

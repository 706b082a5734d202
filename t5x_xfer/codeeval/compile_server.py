"""A warm javac for a worker: one JVM compiles every Java program the worker builds.

Starting javac costs about half a second per program (JVM start and class loading), more than
compiling a HumanEval-X solution does. The server (``JavacServer.java``, run by the JDK's
source launcher) compiles only: it gets ``-proc:none``, so no annotation processor and no code
from the source runs in it, and the compiled program still runs only in the sandbox. It runs
outside the sandbox as the worker's own user, in its own process group, with a bounded heap.
Anything unusual (it cannot start, it dies, the compiler itself fails) makes the caller compile
that program the old way, inside the sandbox; a compile that outlives its timeout is a
``timeout`` like any other, and the server is restarted for the next program.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from pathlib import Path

from t5x_xfer.codeeval import sandbox as sb

SOURCE = Path(__file__).with_name("JavacServer.java")
# C1 only: C2's compiler threads compete with the work on small machines (measured slower).
JVM_FLAGS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-Xmx512m")
JAVAC_FLAGS = ("-proc:none", "-implicit:none", "-nowarn", "-encoding", "UTF-8")
COMPILER_FAILED = 3  # JavacServer's code for "the compiler itself failed"


class JavacServer:
    """One warm javac process, started on first use; ``compile`` returns None when the caller
    should compile in the sandbox instead."""

    def __init__(self, java: str, start_timeout_s: float = 60.0) -> None:
        self.java = java
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.warm = False  # has answered a request since it started
        self.failures = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [self.java, *JVM_FLAGS, str(SOURCE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
        self.warm = False

    def compile(self, source: Path, out_dir: Path, timeout_s: float) -> sb.Outcome | None:
        """Compile ``source`` into ``out_dir``; an Outcome as if javac had run in the sandbox."""
        if self.failures >= 3:  # the server keeps failing here: stop trying
            return None
        args = [*JAVAC_FLAGS, "-classpath", str(out_dir), "-d", str(out_dir), str(source)]
        if any("\t" in a or "\n" in a for a in args):  # not expressible in the protocol
            return None
        if self.pid is None:
            try:
                self._start()
            except OSError:
                self.failures += 1
                return None
        start = time.monotonic()
        # The first request also pays the JVM's start (the source launcher compiles the server).
        deadline = start + timeout_s + (0.0 if self.warm else self.start_timeout_s)
        try:
            self.proc.stdin.write(("\t".join(args) + "\n").encode())
            self.proc.stdin.flush()
            head = self._read_line(deadline)
            code, size = (int(x) for x in head.split())
            text = self._read_exact(size, deadline)
        except TimeoutError:
            self.close()
            wall = time.monotonic() - start
            return sb.Outcome(-9, "", "javac timed out", True, False, wall)
        except (OSError, ValueError, EOFError):
            self.close()
            self.failures += 1
            return None
        self.warm = True
        if code == COMPILER_FAILED:
            self.close()
            self.failures += 1
            return None
        wall = time.monotonic() - start
        return sb.Outcome(code, "", text.decode("utf-8", "replace"), False, False, wall)

    def _read_line(self, deadline: float) -> str:
        buf = b""
        while not buf.endswith(b"\n"):
            buf += self._read_some(1, deadline)
        return buf.decode()

    def _read_exact(self, size: int, deadline: float) -> bytes:
        buf = b""
        while len(buf) < size:
            buf += self._read_some(size - len(buf), deadline)
        return buf

    def _read_some(self, limit: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(timeout=remaining):
                raise TimeoutError
        chunk = os.read(fd, limit)
        if not chunk:
            raise EOFError
        return chunk

    def close(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()
        self.proc = None

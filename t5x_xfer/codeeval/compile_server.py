"""Warm toolchain servers for a worker: a javac, and parsers for Python and JavaScript.

Starting javac costs about half a second per program (JVM start and class loading), more than
compiling a HumanEval-X solution does. The server (``JavacServer.java``, run by the JDK's
source launcher) compiles only: it gets ``-proc:none``, so no annotation processor and no code
from the source runs in it, and the compiled program still runs only in the sandbox. It runs
outside the sandbox as the worker's own user, in its own process group, with a bounded heap.
Anything unusual (it cannot start, it dies, the compiler itself fails) makes the caller compile
that program the old way, inside the sandbox; a compile that outlives its timeout is a
``timeout`` like any other, and the server is restarted for the next program.

Most samples of a weak model do not parse, and finding that out in the sandbox costs an
interpreter's start per program (about 50 ms for ``python3`` or ``node --check``, plus the
sandbox's set-up). A ``ParseServer`` answers in about a millisecond: it compiles the source
with the same interpreter that runs it and never runs it (Python's ``compile()`` and V8's
compilation execute nothing from the source), on the same terms as the javac. It answers only
"parses" or "syntax error"; anything else (it cannot start, it dies, it runs out of time or
memory, an error that is not a syntax error, Node's ES-module syntax, which ``node --check``
judges by other rules) makes the caller fall back to the sandboxed steps. Its protocol: the
request is ``"<len(filename)> <len(source)>\\n"`` and both as UTF-8; the answer
``"<code> <len(message)>\\n"`` and the message: 0 parses, 1 a syntax error (the message is
what the interpreter prints), 3 cannot judge.
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


class _WarmServer:
    """A long-lived helper process answering framed requests on its stdin/stdout, started on
    first use and again after it died; after three failures it is no longer tried."""

    def __init__(self, argv: list[str], start_timeout_s: float) -> None:
        self.argv = argv
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.warm = False  # has answered a request since it started
        self.failures = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def _ready(self) -> bool:
        """Started (now, if it was not running), unless it keeps failing or cannot start."""
        if self.failures >= 3:  # the server keeps failing here: stop trying
            return False
        if self.pid is None:
            try:
                self.proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                )
            except OSError:
                self.failures += 1
                return False
            self.warm = False
        return True

    def _exchange(self, request: bytes, timeout_s: float) -> tuple[int, bytes]:
        """Send ``request``; the answer's ``"<code> <size>\\n"`` head and its payload. The
        first request also waits for the server's start-up."""
        deadline = time.monotonic() + timeout_s + (0.0 if self.warm else self.start_timeout_s)
        self.proc.stdin.write(request)
        self.proc.stdin.flush()
        code, size = (int(x) for x in self._read_line(deadline).split())
        payload = self._read_exact(size, deadline)
        self.warm = True
        return code, payload

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


class JavacServer(_WarmServer):
    """One warm javac process, started on first use; ``compile`` returns None when the caller
    should compile in the sandbox instead."""

    def __init__(self, java: str, start_timeout_s: float = 60.0) -> None:
        # The first request also pays the JVM's start (the source launcher compiles the server).
        super().__init__([java, *JVM_FLAGS, str(SOURCE)], start_timeout_s)

    def compile(self, source: Path, out_dir: Path, timeout_s: float) -> sb.Outcome | None:
        """Compile ``source`` into ``out_dir``; an Outcome as if javac had run in the sandbox."""
        args = [*JAVAC_FLAGS, "-classpath", str(out_dir), "-d", str(out_dir), str(source)]
        if any("\t" in a or "\n" in a for a in args):  # not expressible in the protocol
            return None
        if not self._ready():
            return None
        start = time.monotonic()
        try:
            code, text = self._exchange(("\t".join(args) + "\n").encode(), timeout_s)
        except TimeoutError:
            self.close()
            wall = time.monotonic() - start
            return sb.Outcome(-9, "", "javac timed out", True, False, wall)
        except (OSError, ValueError, EOFError):
            self.close()
            self.failures += 1
            return None
        if code == COMPILER_FAILED:
            self.close()
            self.failures += 1
            return None
        wall = time.monotonic() - start
        return sb.Outcome(code, "", text.decode("utf-8", "replace"), False, False, wall)


PARSES, SYNTAX_ERROR = 0, 1  # and 3: cannot judge

# As ``python3 -I -B main.py`` compiles the file (the same compiler, flags and file name),
# without running it; its memory is bounded so pathological input fails here, not the worker.
_PYTHON_SERVER = r"""
import resource, sys, traceback
resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    head = inp.readline()
    if not head:
        break
    nf, ns = map(int, head.split())
    filename = inp.read(nf).decode()
    source = inp.read(ns)
    try:
        compile(source, filename, "exec", dont_inherit=True)
        code, msg = 0, ""
    except SyntaxError as e:
        code, msg = 1, "".join(traceback.format_exception_only(type(e), e))
    except BaseException as e:
        code, msg = 3, repr(e)
    data = msg.encode("utf-8", "replace")
    out.write(b"%d %d\n" % (code, len(data)) + data)
    out.flush()
"""

# As ``node --check main.js`` compiles a CommonJS file (Node 20: the module wrapper's body),
# without running it. ES-module syntax (import/export), which --check would judge as a module,
# is left to the sandbox.
_NODE_SERVER = r"""
const vm = require('vm');
const PARAMS = ['exports', 'require', 'module', '__filename', '__dirname'];
const ESM = new RegExp(
  "Cannot use import statement|Unexpected token 'export'|import\\.meta|await is only valid");
let buf = Buffer.alloc(0);
function answer(code, msg) {
  const data = Buffer.from(msg, 'utf8');
  process.stdout.write(Buffer.concat([Buffer.from(`${code} ${data.length}\n`), data]));
}
function serve() {
  for (;;) {
    const nl = buf.indexOf(10);
    if (nl < 0) return;
    const [nf, ns] = buf.subarray(0, nl).toString().split(' ').map(Number);
    if (buf.length < nl + 1 + nf + ns) return;
    const filename = buf.subarray(nl + 1, nl + 1 + nf).toString('utf8');
    let source = buf.subarray(nl + 1 + nf, nl + 1 + nf + ns).toString('utf8');
    buf = buf.subarray(nl + 1 + nf + ns);
    if (source.charCodeAt(0) === 0xFEFF) source = source.slice(1);
    try {
      vm.compileFunction(source, PARAMS, { filename });
      answer(0, '');
    } catch (e) {
      if (e instanceof SyntaxError && !ESM.test(e.message)) {
        answer(1, `${String(e.stack || e).split('\n    at ')[0]}\n`);
      } else {
        answer(3, String(e));
      }
    }
  }
}
process.stdin.on('data', (d) => { buf = Buffer.concat([buf, d]); serve(); });
"""


def server_argv(language: str, tools: dict[str, str]) -> list[str] | None:
    """The parse server's command for ``language`` with its toolchain, or None (none)."""
    if language == "python":
        return [tools["python3"], "-I", "-S", "-B", "-c", _PYTHON_SERVER]
    if language == "js":
        return [tools["node"], "--max-old-space-size=256", "-e", _NODE_SERVER]
    return None


class ParseServer(_WarmServer):
    """One warm parser process, started on first use; ``check`` returns None when the caller
    should judge the program in the sandbox instead."""

    def __init__(self, argv: list[str], start_timeout_s: float = 30.0) -> None:
        super().__init__(argv, start_timeout_s)

    def check(self, filename: str, source: str, timeout_s: float = 10.0) -> sb.Outcome | None:
        """An Outcome as if the interpreter had checked ``source`` (returncode 0: it parses;
        1: a syntax error, on stderr), or None."""
        try:  # as the program's file is written: strict UTF-8
            name, text = filename.encode(), source.encode("utf-8")
        except UnicodeEncodeError:
            return None
        if not self._ready():
            return None
        start = time.monotonic()
        try:
            code, message = self._exchange(
                b"%d %d\n" % (len(name), len(text)) + name + text, timeout_s
            )
        except (OSError, ValueError, EOFError, TimeoutError):
            self.close()
            self.failures += 1
            return None
        if code not in (PARSES, SYNTAX_ERROR):
            return None
        wall = time.monotonic() - start
        return sb.Outcome(code, "", message.decode("utf-8", "replace"), False, False, wall)

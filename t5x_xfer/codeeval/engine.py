"""Execution engine: programs in parallel worker processes, cached by program hash.

Each worker owns a sandbox slot (dedicated uid, scratch dir, cgroups) and runs one program at
a time: build step(s) with the work dir writable, then the run step with it read-only. Results
are written atomically to ``cache_dir/<hash[:2]>/<hash>.json`` as they finish, so a run killed
at any point resumes without re-executing anything finished; identical programs run once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, wait
from pathlib import Path

from t5x_xfer.codeeval import languages as L
from t5x_xfer.codeeval import sandbox as sb
from t5x_xfer.codeeval.compile_server import JavacServer, ParseServer, server_argv
from t5x_xfer.codeeval.toolchains import Toolchain, tools_dir
from t5x_xfer.io_utils import write_atomic

TAIL_CHARS = 2000


@dataclasses.dataclass(frozen=True)
class Program:
    """An assembled program: its language, files and content hash (the cache key)."""

    language: str
    files: tuple[tuple[str, str], ...]
    key: str


@dataclasses.dataclass(frozen=True)
class ExecConfig:
    """Everything a worker needs; picklable for the worker processes."""

    probe: sb.Probe
    toolchains: dict[str, Toolchain]
    limits: sb.Limits = sb.Limits()
    timeout_scale: float = 1.0
    warm_javac: bool = True  # compile Java in one warm JVM per worker (compile_server)
    warm_parse: bool = True  # check Python and JS syntax in warm parsers first (compile_server)

    def salt(self, language: str) -> str:
        """What besides the source determines a result: recipe, toolchain, limits, timeouts."""
        spec = L.LANGUAGES[language]
        return json.dumps(
            [
                spec.version,
                self.toolchains[language].version,
                dataclasses.asdict(self.limits),
                self.timeout_scale,
            ]
        )


def make_program(language: str, files: dict[str, str], config: ExecConfig) -> Program:
    items = tuple(sorted(files.items()))
    digest = hashlib.sha256(json.dumps([language, items, config.salt(language)]).encode())
    return Program(language, items, digest.hexdigest())


def _tail(text: str) -> str:
    return text if len(text) <= TAIL_CHARS else "..." + text[-TAIL_CHARS:]


def _own(path: Path, uid: int, gid: int, mode_dir: int, mode_file: int) -> None:
    """chown/chmod a tree without following symlinks a build may have planted."""
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid, follow_symlinks=False)
        os.chmod(root, mode_dir)
        for name in dirs + files:
            p = os.path.join(root, name)
            os.chown(p, uid, gid, follow_symlinks=False)
            if not os.path.islink(p) and name in files:
                os.chmod(p, mode_file | (os.stat(p).st_mode & 0o111))


def run_program(
    program: Program,
    box: sb.Sandbox,
    config: ExecConfig,
    javac: JavacServer | None = None,
    parsers: dict[str, ParseServer] | None = None,
) -> dict:
    """Build and run one program in the sandbox and judge it. ``javac``: a warm compiler for
    Java's build step; ``parsers``: warm syntax checks by language (the program still runs in
    the sandbox)."""
    spec = L.LANGUAGES[program.language]
    tools = config.toolchains[program.language].tools
    result = {"status": "", "phase": "build", "returncode": None, "build_s": 0.0, "run_s": 0.0}
    slot = box.slot
    work, tmp = slot.dir / "work", slot.dir / "tmp"
    w = box.inner(work, sb.INNER_WORKDIR)
    build = True
    parser = (parsers or {}).get(program.language)
    if parser is not None and spec.parse is not None:
        out = parser.check(f"{w}/{spec.parse}", dict(program.files)[spec.parse])
        if out is not None:
            result["build_s"] += out.wall_s
            if out.returncode != 0:
                return {**result, **_describe(out), "status": "compile_error"}
            build = False  # it parses: the build steps would only check that
    for d in (work, tmp):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(mode=0o700)
    for name, text in program.files:
        (work / name).write_text(text, encoding="utf-8")
    uid = box.uid if box.uid is not None else os.geteuid()
    _own(work, uid, uid, 0o700, 0o600)
    _own(tmp, uid, uid, 0o700, 0o600)
    env = spec.env(tools)
    rw: dict[Path, str] = {}
    if program.language == "go":
        # The Go build cache is writable only during builds (never while the program runs);
        # without a private mount namespace it cannot be hidden, so it is per program there.
        cache = slot.dir / "gocache" if box.isolated_fs or box.uid is None else tmp / "gocache"
        cache.mkdir(mode=0o700, exist_ok=True)
        if cache.stat().st_uid != uid:
            _own(cache, uid, uid, 0o700, 0o600)
        rw[cache] = "/gocache"
        env = {**env, "GOCACHE": box.inner(cache, "/gocache")}
    scale = config.timeout_scale
    for argv in spec.build(tools, w) if build else []:
        out = None
        if javac is not None and program.language == "java":
            out = javac.compile(work / "Main.java", work, spec.compile_timeout_s * scale)
            if out is not None:  # report paths as the sandboxed javac would have
                out.stderr = out.stderr.replace(str(work), w)
        if out is None:
            out = box.run(
                argv,
                workdir=work,
                timeout_s=spec.compile_timeout_s * scale,
                env=env,
                writable=True,
                rw_binds=rw,
                tmp=tmp,
            )
        result["build_s"] += out.wall_s
        status = _early_status(out, spec, "compile_error")
        if status:
            return {**result, **_describe(out), "status": status}
    # The program may not modify its own files: hand them to root, readable by all.
    _own(work, 0, 0, 0o755, 0o644)
    result["phase"] = "run"
    for argv in spec.run(tools, w):
        out = box.run(argv, workdir=work, timeout_s=spec.run_timeout_s * scale, env=env, tmp=tmp)
        result["run_s"] += out.wall_s
        status = _early_status(out, spec, None) or spec.judge(
            out.returncode, out.stdout, out.stderr
        )
        result.update(_describe(out), status=status)
        if status != "passed":
            break
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def _early_status(out: sb.Outcome, spec: L.Language, on_error: str | None) -> str | None:
    if out.timed_out:
        return "timeout"
    if out.output_limited:
        return "output_limit"
    if re.search(spec.missing_library, out.stdout + out.stderr):
        return "environment_error"
    if on_error and out.returncode != 0:
        return on_error
    return None


def _describe(out: sb.Outcome) -> dict:
    return {
        "returncode": out.returncode,
        "stdout": _tail(out.stdout),
        "stderr": _tail(out.stderr),
    }


# --- workers ---


def worker_main(inbox: Connection, outbox: Connection) -> None:
    """A worker process: lock a slot, then run the programs the parent sends, one at a time."""
    sb.prctl(sb.PR_SET_PDEATHSIG, signal.SIGKILL)
    sb.prctl(sb.PR_SET_CHILD_SUBREAPER, 1)
    config: ExecConfig = inbox.recv()
    slot = sb.acquire_slot(with_uid=config.probe.tier in ("bwrap+uid", "uid"))
    binds = [str(tools_dir())] + _tool_roots(config)
    box = sb.Sandbox(config.probe, slot, config.limits, ro_binds=binds)
    java = config.toolchains.get("java")
    javac = None
    if config.warm_javac and java is not None and java.ready:
        javac = JavacServer(java.tools["java"])
    parsers = {}
    for name, chain in config.toolchains.items() if config.warm_parse else ():
        argv = server_argv(name, chain.tools) if chain.ready else None
        if argv is not None and L.LANGUAGES[name].parse is not None:
            parsers[name] = ParseServer(argv)
    servers = [s for s in [javac, *parsers.values()] if s is not None]
    box.keep_alive = lambda: frozenset(s.pid for s in servers if s.pid)
    outbox.send(("ready", slot.index))
    try:
        while True:
            program = inbox.recv()
            if program is None:
                break
            try:
                result = run_program(program, box, config, javac, parsers)
            except Exception as e:  # an evaluator bug, never a model failure
                result = {"status": "environment_error", "phase": "engine", "stderr": repr(e)}
            outbox.send(("result", program.key, result))
    finally:
        for server in servers:
            server.close()
        slot.release()


class _Worker:
    """A worker as a fresh interpreter (no fork of a threaded parent, no __main__ guard)."""

    def __init__(self, config: ExecConfig) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "t5x_xfer.codeeval._worker", str(to_child_r), str(from_child_w)],
            pass_fds=(to_child_r, from_child_w),
            env=env,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self.inbox = Connection(from_child_r, writable=False)
        self.outbox = Connection(to_child_w, readable=False)
        self.outbox.send(config)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.outbox.send(None)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.inbox.close()
        self.outbox.close()


def _tool_roots(config: ExecConfig) -> list[str]:
    """Install prefixes of tools outside the system dirs the sandbox already mounts."""
    roots = set()
    for chain in config.toolchains.values():
        for path in chain.tools.values():
            real = os.path.realpath(path)
            if not real.startswith(("/usr/", "/etc/", "/bin/", "/lib")) and os.path.exists(real):
                p = Path(real)
                roots.add(str(p.parent.parent if p.parent.name == "bin" else p.parent))
    return sorted(roots)


def cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.json"


def load_cached(cache_dir: Path, key: str) -> dict | None:
    path = cache_path(cache_dir, key)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclasses.dataclass
class ExecStats:
    """How many programs came from the cache and which ones were executed."""

    cached: int = 0
    executed: list[str] = dataclasses.field(default_factory=list)


def execute(
    programs: Iterable[Program],
    config: ExecConfig,
    *,
    cache_dir: Path,
    workers: int,
    progress: bool = True,
    on_result: Callable[[Program, dict], None] | None = None,
) -> tuple[dict[str, dict], ExecStats]:
    """Results per program key; runs only programs without a cached result."""
    from tqdm import tqdm

    unique = {p.key: p for p in programs}
    results: dict[str, dict] = {}
    stats = ExecStats()
    todo = []
    for key, program in unique.items():
        cached = load_cached(cache_dir, key)
        if cached is not None:
            results[key] = cached
            stats.cached += 1
        else:
            todo.append(program)
    # Interleave languages so every worker warms each toolchain early and loads balance.
    rank: Counter[str] = Counter()
    order = []
    for program in todo:
        order.append((rank[program.language], len(order), program))
        rank[program.language] += 1
    todo = [program for _, _, program in sorted(order, key=lambda t: t[:2])]
    if not todo:
        return results, stats
    bar = tqdm(total=len(unique), initial=stats.cached, disable=not progress, unit="prog")
    done_per_lang: Counter[str] = Counter()
    start = time.monotonic()
    workers_ = [_Worker(config) for _ in range(max(1, min(workers, len(todo))))]
    queue = list(reversed(todo))
    busy: dict[Connection, Program] = {}
    by_inbox = {w.inbox: w for w in workers_}
    try:
        for w in workers_:
            try:
                w.inbox.recv()  # ready
            except EOFError:
                raise RuntimeError("a worker failed to start; its error is printed above") from None
            if queue:
                busy[w.inbox] = queue.pop()
                w.outbox.send(busy[w.inbox])
        while busy:
            for conn in wait(list(busy)):
                try:
                    _, key, result = conn.recv()
                except EOFError:
                    raise RuntimeError(f"a worker died while running {busy[conn].key}") from None
                program = busy.pop(conn)
                result["language"] = program.language
                results[key] = result
                if result["status"] != "environment_error":
                    write_atomic(cache_path(cache_dir, key), json.dumps(result))
                stats.executed.append(key)
                if on_result:
                    on_result(program, result)
                done_per_lang[program.language] += 1
                elapsed = max(time.monotonic() - start, 1e-9)
                bar.set_postfix_str(
                    " ".join(f"{k} {v / elapsed:.1f}/s" for k, v in sorted(done_per_lang.items()))
                )
                bar.update(1)
                if queue:
                    busy[conn] = queue.pop()
                    by_inbox[conn].outbox.send(busy[conn])
    finally:
        bar.close()
        for w in workers_:
            w.close()
    return results, stats

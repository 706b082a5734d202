"""Discovery of the compilers, runtimes and benchmark libraries each language needs.

A missing piece is reported with how to install it, and its samples are never run (a missing
toolchain must not be scored as a model failure). Prepared artefacts (Rust crates compiled
offline from Debian's sources, js-md5, the C++ precompiled header) live in a tools directory
that ``launch/install_toolchains.sh`` fills: ``$T5X_CODEEVAL_TOOLS`` or /opt/t5x_xfer-codeeval,
outside any home directory because the sandbox's unprivileged users must be able to read it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from t5x_xfer.codeeval import languages as L

DEFAULT_TOOLS_DIR = "/opt/t5x_xfer-codeeval"
INSTALL = "run launch/install_toolchains.sh as root"
GOPATH = "/usr/share/gocode"  # Debian's golang-*-dev packages install Go sources here
APT_HINTS = {
    "python3": "apt-get install python3",
    "g++": "apt-get install g++",
    "javac": "apt-get install default-jdk-headless",
    "java": "apt-get install default-jdk-headless",
    "node": "apt-get install nodejs",
    "go": "apt-get install golang-go",
    "rustc": "apt-get install rustc cargo",
}


def tools_dir() -> Path:
    """Where install_toolchains.sh puts prepared artefacts."""
    return Path(os.environ.get("T5X_CODEEVAL_TOOLS", DEFAULT_TOOLS_DIR))


@dataclasses.dataclass(frozen=True)
class Toolchain:
    """What one language needs: resolved paths, what is missing (with a fix), a version id."""

    language: str
    tools: dict[str, str]
    missing: tuple[str, ...]
    version: str

    @property
    def ready(self) -> bool:
        return not self.missing


def sandbox_readable(path: str | Path) -> bool:
    """Whether users other than the owner can reach ``path`` (every directory o+x, file o+r).

    The sandbox runs programs as dedicated unprivileged users, so a compiler under /root is
    useless to it even though the evaluator itself can run it.
    """
    p = Path(path).resolve()
    for parent in list(reversed(p.parents)):
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(p).st_mode
    return bool(mode & stat.S_IROTH) and (not stat.S_ISDIR(mode) or bool(mode & stat.S_IXOTH))


def _run(argv: list[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 1, str(e)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def _which(name: str, prefer_system: bool) -> str | None:
    """Find an executable, preferring /usr/bin when programs run as other users."""
    if prefer_system:
        for d in ("/usr/bin", "/usr/local/bin", "/bin"):
            candidate = Path(d) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which(name)


def _discover_one(lang: str, need_shared: bool) -> Toolchain:
    spec = L.LANGUAGES[lang]
    tools: dict[str, str] = {}
    missing: list[str] = []
    versions: list[str] = []
    tdir = tools_dir()
    rust_manifest = tdir / "rust" / "crates.json"
    manifest = json.loads(rust_manifest.read_text()) if rust_manifest.is_file() else None
    for exe in spec.executables:
        override = os.environ.get("T5X_CODEEVAL_" + exe.upper().replace("+", "X"))
        path = override or (manifest or {}).get(exe) or _which(exe, need_shared)
        if path is None or not os.access(path, os.X_OK):
            missing.append(f"{exe} not found ({path or 'not on PATH'}; {APT_HINTS[exe]})")
            continue
        if need_shared and not sandbox_readable(path):
            missing.append(
                f"{path} is not readable by the sandbox's unprivileged users "
                f"(install a system copy: {APT_HINTS[exe]})"
            )
            continue
        tools[exe] = path
        flag = "-version" if exe in ("java", "javac") else "--version"
        versions.append(_run([path, flag])[1].splitlines()[0] if path else "")
    if missing:
        return Toolchain(lang, tools, tuple(missing), "")
    missing += _check_libraries(lang, tools, tdir, manifest)
    # Prepared artefacts change results too (the rand shim, the precompiled header).
    versions.append(json.dumps(manifest) if lang == "rust" else "")
    if lang == "cpp" and (tdir / "cpp" / "stamp").is_file():
        versions.append((tdir / "cpp" / "stamp").read_text())
    if lang == "go":
        tools["gopath"] = GOPATH
        gofmt = Path(os.path.realpath(tools["go"])).with_name("gofmt")
        if os.access(gofmt, os.X_OK):
            tools["gofmt"] = str(gofmt)
    version = hashlib.sha256("\n".join(versions).encode()).hexdigest()[:16]
    return Toolchain(lang, tools, tuple(missing), version)


def _check_libraries(lang: str, tools: dict[str, str], tdir: Path, manifest: dict | None) -> list:
    missing = []
    if lang == "python":
        if _run([tools["python3"], "-I", "-c", "import numpy"])[0] != 0:
            missing.append("numpy for " + tools["python3"] + " (apt-get install python3-numpy)")
    elif lang == "cpp":
        src = "#include <boost/any.hpp>\n#include <openssl/md5.h>\n"
        proc = subprocess.run(
            [tools["g++"], "-fsyntax-only", "-x", "c++", "-"],
            input=src,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            missing.append("Boost and OpenSSL headers (apt-get install libboost-dev libssl-dev)")
        pch = tdir / "cpp" / "humaneval.h"
        if (pch.parent / "humaneval.h.gch").is_file():
            tools["cpp_pch"] = str(pch)
        gold = _which("ld.gold", True)
        if gold:
            tools["ld.gold"] = gold  # links a fifth of a second faster than ld.bfd
    elif lang == "java":
        # A class-data archive of javac's startup (built by the install script) halves its time.
        cds = tdir / "java" / "javac.jsa"
        if cds.is_file() and (tdir / "java" / "stamp").read_text().strip() == _java_id(tools):
            tools["javac_cds"] = str(cds)
    elif lang == "js":
        modules = tdir / "node" / "node_modules"
        if not (modules / "js-md5").is_dir():
            missing.append(f"js-md5 in {modules} ({INSTALL}: npm install js-md5)")
        tools["node_modules"] = str(modules)
    elif lang == "go":
        if not (Path(GOPATH) / "src/github.com/stretchr/testify/assert").is_dir():
            missing.append("testify (apt-get install golang-github-stretchr-testify-dev)")
    elif lang == "rust":
        if manifest is None or manifest.get("rustc") != tools["rustc"]:
            missing.append(f"crates rand, regex, md5 built for {tools['rustc']} ({INSTALL})")
        else:
            tools["rust_deps"] = manifest["deps"]
            for crate in ("rand", "regex", "md5"):
                tools["rust_crate_" + crate] = manifest[crate]
        gold = _which("ld.gold", True)
        if gold:
            tools["ld.gold"] = gold  # links the test binaries faster than ld.bfd
        std = _rust_std_dylib_dir(tools["rustc"])
        if std:
            tools["rust_std_dylib"] = std  # linking std dynamically halves each build
    return missing


def _rust_std_dylib_dir(rustc: str) -> str | None:
    """The directory of the toolchain's shared libstd, when it ships one."""
    code, sysroot = _run([rustc, "--print", "sysroot"])
    code_v, verbose = _run([rustc, "-vV"])
    host = next(
        (x.split(":", 1)[1].strip() for x in verbose.splitlines() if x.startswith("host:")), ""
    )
    if code or code_v or not host:
        return None
    lib = Path(sysroot) / "lib" / "rustlib" / host / "lib"
    return str(lib) if any(lib.glob("libstd-*.so")) else None


def _java_id(tools: dict[str, str]) -> str:
    return _run([tools["javac"], "-version"])[1].splitlines()[0]


def discover(languages: Iterable[str], *, shared: bool | None = None) -> dict[str, Toolchain]:
    """Toolchains for ``languages``. ``shared``: tools must be usable by other users
    (default: when running as root, where the sandbox switches to unprivileged users)."""
    need_shared = os.geteuid() == 0 if shared is None else shared
    langs = L.check_languages(list(languages))
    # Concurrently: the work is waiting for each tool's --version (javac's JVM start alone
    # takes a third of a second), and the evaluation waits for all of them.
    with ThreadPoolExecutor(max_workers=max(len(langs), 1)) as pool:
        chains = list(pool.map(lambda lang: _discover_one(lang, need_shared), langs))
    return dict(zip(langs, chains, strict=True))


def require_ready(
    languages: Iterable[str], *, subject: str = "", fix: str = "leave those languages out"
) -> dict[str, Toolchain]:
    """:func:`discover`, raising (with each missing piece and ``fix``) unless all are ready:
    a missing toolchain is an error before any work, never a model failure."""
    chains = discover(languages)
    missing = {lang: c.missing for lang, c in chains.items() if not c.ready}
    if missing:
        details = "; ".join(f"{lang}: {', '.join(m)}" for lang, m in missing.items())
        raise RuntimeError(
            f"toolchain missing for {subject}{sorted(missing)}: {details}. "
            f"See `python -m t5x_xfer.codeeval doctor`, or {fix}."
        )
    return chains


def doctor() -> int:
    """Print, per language, ready or what is missing and how to install it; and the sandbox."""
    from t5x_xfer.codeeval import sandbox

    chains = discover(L.LANGUAGES)
    for lang, chain in chains.items():
        if chain.ready:
            print(f"{lang:7s} ready")
        else:
            print(f"{lang:7s} MISSING: " + "; ".join(chain.missing))
    probe = sandbox.probe()
    print(f"sandbox tier: {probe.tier} ({probe.detail})")
    if not all(c.ready for c in chains.values()):
        print(f"fix: {INSTALL} (Debian), or install the packages named above")
        return 1
    return 0

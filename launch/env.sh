#!/usr/bin/env bash
# Create or reuse the project's virtual environment (.venv) and install the package into it.
# Sourced by the README's commands; usage: source launch/env.sh [EXTRAS], e.g. "test".
# Re-installs only when pyproject.toml or the extras change (a stamp file records both).
set -euo pipefail
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_extras="${1:-}"
_python="${PYTHON:-python3}"
if ! "$_python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "error: $_python is missing or older than Python 3.10; set PYTHON=/path/to/python3.10+" >&2
  return 1
fi
if [ ! -x "$_root/.venv/bin/python" ]; then
  echo "[env] creating $_root/.venv with $("$_python" --version)"
  "$_python" -m venv "$_root/.venv"
fi
# The stamp holds "<pyproject hash>-<extras>"; an install with extras also serves plain use.
_hash="$(sha256sum <"$_root/pyproject.toml" | cut -c1-16)"
_want="${_hash}-${_extras}"
_stamp="$_root/.venv/.t5x_xfer-installed"
_have="$(cat "$_stamp" 2>/dev/null || true)"
if [ "$_have" != "$_want" ] && ! { [ -z "$_extras" ] && [ "${_have%%-*}" = "$_hash" ]; }; then
  echo "[env] installing t5x_xfer${_extras:+[$_extras]} into .venv (first run takes a few minutes)"
  "$_root/.venv/bin/python" -m pip install -q --upgrade pip
  "$_root/.venv/bin/python" -m pip install -q -e "$_root${_extras:+[$_extras]}"
  echo "$_want" >"$_stamp"
fi
export PATH="$_root/.venv/bin:$PATH"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# glibc's malloc on transparent huge pages (t5x_xfer.host.with_huge_pages says why); glibc reads
# it when a process starts. A glibc.malloc.hugetlb of the user's own wins.
case "${GLIBC_TUNABLES:-}" in
  *glibc.malloc.hugetlb=*) ;;
  *) export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.hugetlb=1" ;;
esac

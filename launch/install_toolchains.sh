#!/usr/bin/env bash
# Install what the HumanEval-X evaluator (t5x_xfer.codeeval) needs, on Debian, when run as root:
# compilers/runtimes, the benchmark's libraries, bubblewrap, and prepared artefacts in the tools
# directory ($T5X_CODEEVAL_TOOLS, default /opt/t5x_xfer-codeeval; outside home directories
# because the sandbox's unprivileged users must read it):
#   rust/   rand, regex, md5 compiled offline from Debian's librust-*-dev sources (crates.json)
#   node/   npm js-md5
#   cpp/    the precompiled header of the standard includes
# Idempotent: checks first and does nothing (no apt-get update) when all is in place.
# Not root: prints what is missing and exits 0 (the evaluator then reports those languages).
# Usage: bash launch/install_toolchains.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${T5X_CODEEVAL_TOOLS:-/opt/t5x_xfer-codeeval}"

pkgs=(g++ golang-go golang-github-stretchr-testify-dev libboost-dev libssl-dev bubblewrap
  rustc cargo librust-rand-dev librust-regex-dev librust-regex+default-dev librust-md5-dev python3
  python3-numpy)
command -v javac >/dev/null || pkgs+=(default-jdk-headless)
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "$(id -u)" != 0 ]; then
  if [ ${#missing[@]} -gt 0 ]; then
    echo "[toolchains] not root; missing Debian packages: ${missing[*]}" >&2
    echo "[toolchains] install with: sudo bash launch/install_toolchains.sh" >&2
  fi
  [ -f "$tools/rust/crates.json" ] || echo "[toolchains] not root; Rust crates not prepared in $tools" >&2
  [ -d "$tools/node/node_modules/js-md5" ] || echo "[toolchains] not root; js-md5 not in $tools" >&2
  exit 0
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "[toolchains] installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
mkdir -p "$tools"

# Rust crates, built once with Debian's rustc (the one the sandbox can read) and no network.
# The tests were written against rand 0.4 (Rust/50 calls gen_range(low, high)) and Debian ships
# rand 0.8, so `rand` is a small crate giving rand 0.4's Rng API on top of rand 0.8.
rustc_bin=/usr/bin/rustc
read -r -d '' rand04 <<'RUST' || true
//! rand 0.4's `Rng` API, which HumanEval-X's Rust tests use, implemented with rand 0.8.
pub use rand08::rngs::ThreadRng;
pub use rand08::{random, rngs, thread_rng, CryptoRng, Error, RngCore, SeedableRng};
pub mod distributions {
    pub use rand08::distributions::*;
}
pub mod seq {
    pub use rand08::seq::*;
}
use rand08::distributions::{uniform::SampleUniform, Distribution, Standard};

pub trait Rng: RngCore {
    fn gen<T>(&mut self) -> T
    where
        Standard: Distribution<T>,
        Self: Sized,
    {
        Standard.sample(self)
    }
    fn gen_range<T: SampleUniform + PartialOrd>(&mut self, low: T, high: T) -> T
    where
        Self: Sized,
    {
        rand08::Rng::gen_range(self, low..high)
    }
    fn gen_weighted_bool(&mut self, n: u32) -> bool
    where
        Self: Sized,
    {
        n <= 1 || self.gen_range(0, n) == 0
    }
    fn choose<'a, T>(&mut self, values: &'a [T]) -> Option<&'a T>
    where
        Self: Sized,
    {
        rand08::seq::SliceRandom::choose(values, self)
    }
    fn shuffle<T>(&mut self, values: &mut [T])
    where
        Self: Sized,
    {
        rand08::seq::SliceRandom::shuffle(values, self)
    }
}
impl<R: RngCore + ?Sized> Rng for R {}
RUST
rust_id="$($rustc_bin --version) $(echo "$rand04" | sha256sum | cut -c1-16)"
if ! grep -qF "\"$rust_id\"" "$tools/rust/crates.json" 2>/dev/null; then
  echo "[toolchains] building Rust crates rand (0.4 API), regex, md5 offline with $rust_id"
  build="$(mktemp -d)"
  mkdir -p "$build/src" "$build/.cargo" "$build/rand04/src"
  printf '[package]\nname = "humaneval_deps"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\nhumaneval_rand = { path = "rand04" }\nregex = "1"\nmd5 = "0.7"\n' >"$build/Cargo.toml"
  printf '[package]\nname = "humaneval_rand"\nversion = "0.4.99"\nedition = "2021"\n[dependencies]\nrand08 = { package = "rand", version = "0.8" }\n' >"$build/rand04/Cargo.toml"
  echo "$rand04" >"$build/rand04/src/lib.rs"
  : >"$build/src/lib.rs"
  printf '[source.crates-io]\nreplace-with = "debian"\n[source.debian]\ndirectory = "/usr/share/cargo/registry"\n' >"$build/.cargo/config.toml"
  (cd "$build" && CARGO_HOME="$build/home" RUSTC="$rustc_bin" /usr/bin/cargo build -q --offline --release)
  rm -rf "$tools/rust"
  mkdir -p "$tools/rust/deps"
  cp "$build"/target/release/deps/*.rlib "$tools/rust/deps/"
  rm -rf "$build"
  lib() { find "$tools/rust/deps" -name "lib$1-*.rlib" | sort | head -n1; }
  printf '{"rustc": "%s", "version": "%s", "deps": "%s", "rand": "%s", "regex": "%s", "md5": "%s"}\n' \
    "$rustc_bin" "$rust_id" "$tools/rust/deps" "$(lib humaneval_rand)" "$(lib regex)" "$(lib md5)" \
    >"$tools/rust/crates.json"
fi

# js-md5 for JavaScript/162, in the tools directory (NODE_PATH points there).
if [ ! -d "$tools/node/node_modules/js-md5" ]; then
  echo "[toolchains] npm install js-md5"
  npm install -s --no-audit --no-fund --prefix "$tools/node" js-md5@0.8.3 >/dev/null
fi

# Precompiled header of the C++ standard includes (same flags as the evaluator's g++ call).
header="$(PYTHONPATH="$root" python3 -c \
  'from t5x_xfer.codeeval.languages import CPP_PREAMBLE; print(CPP_PREAMBLE, end="")')"
gxx_id="$(g++ --version | head -n1) $(echo "$header" | sha256sum | cut -c1-16)"
if [ "$(cat "$tools/cpp/stamp" 2>/dev/null)" != "$gxx_id" ]; then
  echo "[toolchains] precompiling the C++ header"
  mkdir -p "$tools/cpp"
  echo "$header" >"$tools/cpp/humaneval.h"
  g++ -std=c++17 -w -x c++-header "$tools/cpp/humaneval.h" -o "$tools/cpp/humaneval.h.gch"
  echo "$gxx_id" >"$tools/cpp/stamp"
fi
# Class-data archive of javac's startup: halves each compile's time.
java_id="$(javac -version 2>&1 | head -n1)"
if [ "$(cat "$tools/java/stamp" 2>/dev/null)" != "$java_id" ]; then
  echo "[toolchains] archiving javac's classes (CDS)"
  jbuild="$(mktemp -d)"
  printf 'import java.util.*;\nclass Main { public static void main(String[] a) { List<Integer> x = new ArrayList<>(Arrays.asList(1, 2)); if (x.size() != 2) throw new AssertionError(); } }\n' >"$jbuild/Main.java"
  mkdir -p "$tools/java"
  javac -J-XX:ArchiveClassesAtExit="$tools/java/javac.jsa" -J-XX:TieredStopAtLevel=1 \
    -J-XX:+UseSerialGC -J-XX:-UsePerfData -d "$jbuild" "$jbuild/Main.java" >/dev/null 2>&1
  rm -rf "$jbuild"
  echo "$java_id" >"$tools/java/stamp"
fi
chmod -R a+rX "$tools"

"""The mini benchmark's problems, as Python data, and the writer of its ``jsonl.gz`` files.

Each problem is written once (description, typed signature, example and test cases, one
hand-written solution per language); the per-language records are rendered from it in the
style of the corresponding HumanEval-X file (field names, prompt layout, test harness), so the
evaluator and the seqio tasks read them exactly as they read HumanEval-X. The committed files
are this module's output; regenerate them after an edit with

    python -m t5x_xfer.codeeval.minibench.build          # rewrite the package's files
    python -m t5x_xfer.codeeval.minibench.build --check  # fail if they are out of date

Gzip is written with mtime 0 and no file name, so the output depends only on this module.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import io
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

LANGUAGES = ("python", "cpp", "java", "js", "go", "rust")
TASK_PREFIX = {
    "python": "Python",
    "cpp": "CPP",
    "java": "Java",
    "js": "JavaScript",
    "go": "Go",
    "rust": "Rust",
}
OUT_DIR = Path(__file__).resolve().parent

Value = int | str | bool | list[int]


@dataclasses.dataclass(frozen=True)
class Case:
    """One call and its expected result."""

    args: tuple[Value, ...]
    expected: Value


@dataclasses.dataclass(frozen=True)
class Problem:
    """A problem in every language. Types are ``int``, ``str``, ``bool`` or ``list`` (of ints);
    ``solutions`` are function bodies in each language's HumanEval-X convention (brace
    languages include the closing brace(s)); ``go_imports`` are the packages the Go solution
    uses, shown in its prompt as HumanEval-X does."""

    name: str
    doc: str
    params: tuple[tuple[str, str], ...]
    returns: str
    examples: tuple[Case, ...]
    tests: tuple[Case, ...]
    solutions: dict[str, str]
    go_imports: tuple[str, ...] = ()


PROBLEMS: tuple[Problem, ...] = (
    Problem(
        name="add",
        doc="Return the sum of the two integers a and b.",
        params=(("a", "int"), ("b", "int")),
        returns="int",
        examples=(Case((2, 3), 5), Case((10, -4), 6)),
        tests=(
            Case((0, 0), 0),
            Case((2, 3), 5),
            Case((10, -4), 6),
            Case((-7, -8), -15),
            Case((100, 250), 350),
        ),
        solutions={
            "python": "    return a + b\n",
            "cpp": "    return a+b;\n}\n",
            "java": "        return a + b;\n    }\n}",
            "js": "  return a + b;\n}\n\n",
            "go": "    return a + b\n}\n\n",
            "rust": "\n    return a + b;\n}\n",
        },
    ),
    Problem(
        name="is_palindrome",
        doc="Return whether the string text reads the same forwards and backwards.",
        params=(("text", "str"),),
        returns="bool",
        examples=(Case(("level",), True), Case(("hello",), False)),
        tests=(
            Case(("",), True),
            Case(("a",), True),
            Case(("level",), True),
            Case(("noon",), True),
            Case(("hello",), False),
            Case(("ab",), False),
            Case(("abca",), False),
        ),
        solutions={
            "python": "    return text == text[::-1]\n",
            "cpp": "    string r(text.rbegin(),text.rend());\n    return r==text;\n}\n",
            "java": (
                "        String reversed = new StringBuilder(text).reverse().toString();\n"
                "        return reversed.equals(text);\n    }\n}"
            ),
            "js": "  return text === text.split('').reverse().join('');\n}\n\n",
            "go": (
                "    runes := []rune(text)\n"
                "    for i, j := 0, len(runes)-1; i < j; i, j = i+1, j-1 {\n"
                "        if runes[i] != runes[j] {\n"
                "            return false\n"
                "        }\n"
                "    }\n"
                "    return true\n}\n\n"
            ),
            "rust": (
                "\n    let reversed: String = text.chars().rev().collect();\n"
                "    return reversed == text;\n}\n"
            ),
        },
    ),
    Problem(
        name="sum_list",
        doc="Return the sum of the integers in the list numbers (0 for an empty list).",
        params=(("numbers", "list"),),
        returns="int",
        examples=(Case(([1, 2, 3],), 6), Case(([],), 0)),
        tests=(
            Case(([],), 0),
            Case(([5],), 5),
            Case(([1, 2, 3],), 6),
            Case(([-1, 1, -2, 2],), 0),
            Case(([10, 20, 30, 40],), 100),
        ),
        solutions={
            "python": (
                "    total = 0\n    for n in numbers:\n        total += n\n    return total\n"
            ),
            "cpp": (
                "    int total=0;\n"
                "    for (int i=0;i<numbers.size();i++) total+=numbers[i];\n"
                "    return total;\n}\n"
            ),
            "java": (
                "        int total = 0;\n"
                "        for (int n : numbers) {\n"
                "            total += n;\n"
                "        }\n"
                "        return total;\n    }\n}"
            ),
            "js": (
                "  let total = 0;\n  for (const n of numbers) {\n    total += n;\n  }\n"
                "  return total;\n}\n\n"
            ),
            "go": (
                "    total := 0\n    for _, n := range numbers {\n        total += n\n    }\n"
                "    return total\n}\n\n"
            ),
            "rust": (
                "\n    let mut total = 0;\n"
                "    for n in numbers.iter() {\n        total += n;\n    }\n"
                "    return total;\n}\n"
            ),
        },
    ),
    Problem(
        name="count_vowels",
        doc="Return how many vowels (a, e, i, o, u, lower or upper case) the string s has.",
        params=(("s", "str"),),
        returns="int",
        examples=(Case(("hello",), 2), Case(("Apple",), 2)),
        tests=(
            Case(("",), 0),
            Case(("xyz",), 0),
            Case(("hello",), 2),
            Case(("Apple",), 2),
            Case(("AEIOU",), 5),
            Case(("programming",), 3),
        ),
        solutions={
            "python": "    return sum(1 for c in s if c.lower() in 'aeiou')\n",
            "cpp": (
                "    int count=0;\n"
                '    string vowels="aeiouAEIOU";\n'
                "    for (int i=0;i<s.length();i++)\n"
                "        if (vowels.find(s[i])!=string::npos) count+=1;\n"
                "    return count;\n}\n"
            ),
            "java": (
                "        int count = 0;\n"
                "        for (char c : s.toCharArray()) {\n"
                '            if ("aeiouAEIOU".indexOf(c) != -1) {\n'
                "                count += 1;\n"
                "            }\n"
                "        }\n"
                "        return count;\n    }\n}"
            ),
            "js": (
                "  let count = 0;\n  for (const c of s) {\n    if ('aeiouAEIOU'.includes(c)) {\n"
                "      count += 1;\n    }\n  }\n  return count;\n}\n\n"
            ),
            "go": (
                "    count := 0\n"
                "    for _, c := range s {\n"
                '        if strings.ContainsRune("aeiouAEIOU", c) {\n'
                "            count++\n"
                "        }\n"
                "    }\n"
                "    return count\n}\n\n"
            ),
            "rust": (
                '\n    return s.chars().filter(|c| "aeiouAEIOU".contains(*c)).count() as i32;\n}\n'
            ),
        },
        go_imports=("strings",),
    ),
    Problem(
        name="max_element",
        doc="Return the largest element of the non-empty list numbers.",
        params=(("numbers", "list"),),
        returns="int",
        examples=(Case(([1, 2, 3],), 3), Case(([-5, -2, -9],), -2)),
        tests=(
            Case(([7],), 7),
            Case(([1, 2, 3],), 3),
            Case(([3, 2, 1],), 3),
            Case(([-5, -2, -9],), -2),
            Case(([4, 10, 4, -1],), 10),
        ),
        solutions={
            "python": (
                "    best = numbers[0]\n    for n in numbers[1:]:\n        if n > best:\n"
                "            best = n\n    return best\n"
            ),
            "cpp": (
                "    int best=numbers[0];\n"
                "    for (int i=1;i<numbers.size();i++)\n"
                "        if (numbers[i]>best) best=numbers[i];\n"
                "    return best;\n}\n"
            ),
            "java": "        return Collections.max(numbers);\n    }\n}",
            "js": "  return Math.max(...numbers);\n}\n\n",
            "go": (
                "    best := numbers[0]\n"
                "    for _, n := range numbers[1:] {\n"
                "        if n > best {\n"
                "            best = n\n"
                "        }\n"
                "    }\n"
                "    return best\n}\n\n"
            ),
            "rust": "\n    return *numbers.iter().max().unwrap();\n}\n",
        },
    ),
    Problem(
        name="reverse_words",
        doc=(
            "Return the words of sentence in reverse order; words are separated by single spaces."
        ),
        params=(("sentence", "str"),),
        returns="str",
        examples=(Case(("hello world",), "world hello"), Case(("one two three",), "three two one")),
        tests=(
            Case(("one",), "one"),
            Case(("hello world",), "world hello"),
            Case(("one two three",), "three two one"),
            Case(("a b c d",), "d c b a"),
        ),
        solutions={
            "python": "    return ' '.join(reversed(sentence.split(' ')))\n",
            "cpp": (
                "    vector<string> words;\n"
                '    string current="";\n'
                "    for (int i=0;i<=sentence.length();i++)\n"
                "        if (i==sentence.length() or sentence[i]==' ')\n"
                "        {\n"
                "            words.push_back(current);\n"
                '            current="";\n'
                "        }\n"
                "        else current+=sentence[i];\n"
                '    string out="";\n'
                "    for (int i=words.size()-1;i>=0;i--)\n"
                "    {\n"
                "        out+=words[i];\n"
                "        if (i>0) out+=' ';\n"
                "    }\n"
                "    return out;\n}\n"
            ),
            "java": (
                "        List<String> words = new ArrayList<>(\n"
                '            Arrays.asList(sentence.split(" ", -1)));\n'
                "        Collections.reverse(words);\n"
                '        return String.join(" ", words);\n    }\n}'
            ),
            "js": "  return sentence.split(' ').reverse().join(' ');\n}\n\n",
            "go": (
                '    words := strings.Split(sentence, " ")\n'
                "    for i, j := 0, len(words)-1; i < j; i, j = i+1, j-1 {\n"
                "        words[i], words[j] = words[j], words[i]\n"
                "    }\n"
                '    return strings.Join(words, " ")\n}\n\n'
            ),
            "rust": (
                "\n    let words: Vec<&str> = sentence.split(' ').rev().collect();\n"
                '    return words.join(" ");\n}\n'
            ),
        },
        go_imports=("strings",),
    ),
)

# --- literals and names per language ---

TYPES = {
    "python": {"int": "int", "str": "str", "bool": "bool", "list": "List[int]"},
    "cpp": {"int": "int", "str": "string", "bool": "bool", "list": "vector<int>"},
    "java": {"int": "int", "str": "String", "bool": "boolean", "list": "List<Integer>"},
    "go": {"int": "int", "str": "string", "bool": "bool", "list": "[]int"},
    "rust": {"int": "i32", "str": "String", "bool": "bool", "list": "Vec<i32>"},
}
# What a body that "returns a default value" returns, per language and return type: used by
# the tests to check that a wrong completion fails.
DEFAULT_RETURN = {
    "python": {"int": "None", "str": "None", "bool": "None"},
    "cpp": {"int": "{}", "str": "{}", "bool": "{}"},
    "java": {"int": "0", "str": '""', "bool": "false"},
    "js": {"int": "undefined", "str": "undefined", "bool": "undefined"},
    "go": {"int": "0", "str": '""', "bool": "false"},
    "rust": dict.fromkeys(("int", "str", "bool"), "Default::default()"),
}
CPP_INCLUDES = "#include<stdio.h>\n#include<vector>\n#include<string>\nusing namespace std;\n"
RUST_USES = (
    "use std::{slice::Iter, cmp::{max, self}, mem::replace, collections::{HashSet, HashMap}, "
    "ops::Index, ascii::AsciiExt};\nuse rand::Rng;\nuse regex::Regex;\nuse md5;\n"
    "use std::any::{Any, TypeId};\n"
)
GO_TEST_SETUP = (
    'package main\n\nimport (\n    "testing"\n    "github.com/stretchr/testify/assert"\n)\n'
)


def function_name(lang: str, name: str) -> str:
    """snake_case for Python, C++ and Rust; camelCase for Java and JS; PascalCase for Go."""
    parts = name.split("_")
    if lang in ("java", "js"):
        return parts[0] + "".join(p.title() for p in parts[1:])
    if lang == "go":
        return "".join(p.title() for p in parts)
    return name


def literal(lang: str, value: Value, *, plain: bool = False) -> str:
    """``value`` as a literal of ``lang`` (lists are of ints; strings need no escaping).

    ``plain`` is the short form that docstrings and comparisons use: a Java list without the
    mutable ``ArrayList`` copy, a Rust string as ``&str`` rather than ``String``.
    """
    if isinstance(value, bool):
        return str(value) if lang == "python" else str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if any(c in value for c in "'\"\\\n"):
            raise ValueError(f"string literals must not need escaping: {value!r}")
        if lang in ("python", "js"):
            return f"'{value}'"
        return f'"{value}".to_string()' if lang == "rust" and not plain else f'"{value}"'
    items = ", ".join(str(v) for v in value)
    if lang in ("python", "js"):
        return f"[{items}]"
    if lang == "cpp":
        return "{" + items + "}"
    if lang == "java":
        inner = f"Arrays.asList({items})"
        return inner if plain else f"new ArrayList<>({inner})"
    if lang == "go":
        return "[]int{" + items + "}"
    return f"vec![{items}]"


def call(lang: str, problem: Problem, case: Case, *, plain: bool = False) -> str:
    args = ", ".join(literal(lang, a, plain=plain) for a in case.args)
    prefix = "s." if lang == "java" and not plain else ""
    return f"{prefix}{function_name(lang, problem.name)}({args})"


def _doc_examples(lang: str, problem: Problem) -> list[str]:
    lines = []
    for case in problem.examples:
        lines += [f">>> {call(lang, problem, case, plain=True)}", literal(lang, case.expected)]
    return lines


# --- per-language renderers: each returns the record minus task_id ---


def _python(p: Problem) -> dict[str, Any]:
    args = ", ".join(f"{a}: {TYPES['python'][t]}" for a, t in p.params)
    head = "from typing import List\n\n\n" if "list" in dict(p.params).values() else "\n\n"
    declaration = f"{head}def {p.name}({args}) -> {TYPES['python'][p.returns]}:\n"
    text = "\n".join("    " + line for line in [p.doc, *_doc_examples("python", p)])
    prompt = f'{declaration}    """{text[3:]}\n    """\n'

    def check(cases: Sequence[Case]) -> str:
        return f"def check({p.name}):\n" + "".join(
            f"    assert {call('python', p, c)} == {literal('python', c.expected)}\n" for c in cases
        )

    return {
        "prompt": prompt,
        "canonical_solution": p.solutions["python"],
        "test": f"\n\nMETADATA = {{}}\n\n\n{check(p.tests)}\ncheck({p.name})\n",
        "text": text,
        "declaration": declaration,
        "example_test": f"{check(p.examples)}check({p.name})\n",
    }


def _cpp(p: Problem) -> dict[str, Any]:
    args = ",".join(f"{TYPES['cpp'][t]} {a}" for a, t in p.params)
    signature = f"{TYPES['cpp'][p.returns]} {p.name}({args}){{\n"
    doc = "\n".join([p.doc, *_doc_examples("cpp", p)])

    def main(cases: Sequence[Case]) -> str:
        body = "".join(
            f"    assert ({call('cpp', p, c)} == {literal('cpp', c.expected)});\n" for c in cases
        )
        return f"#undef NDEBUG\n#include<assert.h>\nint main(){{\n{body}}}\n"

    return {
        "prompt": f"/*\n{doc}\n*/\n{CPP_INCLUDES}{signature}",
        "canonical_solution": p.solutions["cpp"],
        "test": main(p.tests),
        "declaration": (
            f"{CPP_INCLUDES}#include<algorithm>\n#include<math.h>\n#include<stdlib.h>\n{signature}"
        ),
        "example_test": main(p.examples),
    }


def _java(p: Problem) -> dict[str, Any]:
    args = ", ".join(f"{TYPES['java'][t]} {a}" for a, t in p.params)
    name = function_name("java", p.name)
    signature = f"    public {TYPES['java'][p.returns]} {name}({args}) {{\n"
    head = "import java.util.*;\nimport java.lang.*;\n\nclass Solution {\n"
    text = "\n".join("    " + line for line in [p.doc, *_doc_examples("java", p)])

    def check(c: Case) -> str:
        got = call("java", p, c)
        if p.returns == "bool":
            return got if c.expected else "!" + got
        if p.returns == "str":
            return f"{got}.equals({literal('java', c.expected)})"
        return f"{got} == {literal('java', c.expected)}"

    def main(cases: Sequence[Case]) -> str:
        checks = ",\n".join(f"                {check(c)}" for c in cases)
        return (
            "public class Main {\n    public static void main(String[] args) {\n"
            "        Solution s = new Solution();\n"
            f"        List<Boolean> correct = Arrays.asList(\n{checks}\n        );\n"
            "        if (correct.contains(false)) {\n            throw new AssertionError();\n"
            "        }\n    }\n}"
        )

    return {
        "prompt": f"{head}    /**\n{text}\n     */\n{signature}",
        "canonical_solution": p.solutions["java"],
        "test": main(p.tests),
        "text": text,
        "declaration": head + signature,
        "example_test": main(p.examples) + "\n",
    }


def _js(p: Problem) -> dict[str, Any]:
    name = function_name("js", p.name)
    declaration = f"\nconst {name} = ({', '.join(a for a, _ in p.params)}) => {{\n"
    doc = "\n".join([p.doc, *("  " + line for line in _doc_examples("js", p))])
    tester = "test" + name[0].upper() + name[1:]

    def run(cases: Sequence[Case], gap: str) -> str:
        body = "".join(
            f"  console.assert({call('js', p, c)} === {literal('js', c.expected)})\n" for c in cases
        )
        return f"const {tester} = () => {{\n{body}}}\n{gap}{tester}()\n"

    return {
        "prompt": f"/* {doc}\n  */{declaration}",
        "canonical_solution": p.solutions["js"],
        "test": run(p.tests, "\n"),
        "declaration": declaration,
        "example_test": run(p.examples, ""),
    }


def _go(p: Problem) -> dict[str, Any]:
    name = function_name("go", p.name)
    args = ", ".join(f"{a} {TYPES['go'][t]}" for a, t in p.params)
    declaration = f"\nfunc {name}({args}) {TYPES['go'][p.returns]} {{\n"
    imports = ""
    if p.go_imports:
        imports = "import (\n" + "".join(f'    "{m}"\n' for m in p.go_imports) + ")\n"
    docstring = "".join(f"// {line}\n" for line in [p.doc, *_doc_examples("go", p)])

    def test(cases: Sequence[Case]) -> str:
        body = "".join(
            f"    assert.Equal({literal('go', c.expected)}, {call('go', p, c)})\n" for c in cases
        )
        return f"func Test{name}(t *testing.T) {{\n    assert := assert.New(t)\n{body}}}\n"

    return {
        "prompt": imports + "\n" + docstring + declaration[1:],
        "import": imports,
        "docstring": docstring,
        "declaration": declaration,
        "canonical_solution": p.solutions["go"],
        "test": test(p.tests),
        "test_setup": GO_TEST_SETUP,
        "example_test": test(p.examples),
    }


def _rust(p: Problem) -> dict[str, Any]:
    args = ", ".join(f"{a}: {TYPES['rust'][t]}" for a, t in p.params)
    signature = f"fn {p.name}({args}) -> {TYPES['rust'][p.returns]}{{\n\n"
    body = "".join(
        f"        assert!({call('rust', p, c)} == {literal('rust', c.expected, plain=True)});\n"
        for c in p.tests
    )
    test = (
        "\n#[cfg(test)]\nmod tests {\n    use super::*;\n\n    #[test]\n"
        f"    fn test_{p.name}() {{\n{body}    }}\n\n}}\n"
    )
    return {
        "prompt": f"\n/*\n {p.doc}\n    \n*/\n",
        "declaration": f"\n{RUST_USES}\n{signature}",
        "canonical_solution": p.solutions["rust"],
        "test": test,
        "example_test": "None",  # sic: HumanEval-X's Rust records hold the string "None"
    }


RENDER: dict[str, Callable[[Problem], dict[str, Any]]] = {
    "python": _python,
    "cpp": _cpp,
    "java": _java,
    "js": _js,
    "go": _go,
    "rust": _rust,
}


def records(lang: str) -> list[dict[str, Any]]:
    """The benchmark's records for ``lang``, task ids ``<Prefix>/0``, ``<Prefix>/1``, ..."""
    return [
        {"task_id": f"{TASK_PREFIX[lang]}/{i}", **RENDER[lang](p)} for i, p in enumerate(PROBLEMS)
    ]


def relative_path(lang: str) -> Path:
    """``<lang>/humaneval_<lang>.jsonl.gz``: the layout both the evaluator's loader and the
    seqio HumanEval-X source read (as the copy under ``shared/data/humaneval-x``)."""
    return Path(lang) / f"humaneval_{lang}.jsonl.gz"


def jsonl_bytes(lang: str) -> bytes:
    """Uncompressed JSONL of ``lang``: one record per line, keys in HumanEval-X's order."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records(lang)).encode()


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip: no file name, mtime 0."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def write(out_dir: Path = OUT_DIR) -> list[Path]:
    """Write every language's file under ``out_dir``; returns the paths."""
    paths = []
    for lang in LANGUAGES:
        path = out_dir / relative_path(lang)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip_bytes(jsonl_bytes(lang)))
        paths.append(path)
    return paths


def stale(out_dir: Path = OUT_DIR) -> list[str]:
    """Languages whose file under ``out_dir`` is missing or decompresses to other content."""
    bad = []
    for lang in LANGUAGES:
        path = out_dir / relative_path(lang)
        if not path.is_file() or gzip.decompress(path.read_bytes()) != jsonl_bytes(lang):
            bad.append(lang)
    return bad


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    parser.add_argument("--check", action="store_true", help="only check the files are current")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale(args.out)
        if bad:
            print(f"out of date under {args.out}: {', '.join(bad)}; rerun without --check")
            return 1
        print(f"up to date: {args.out}")
        return 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

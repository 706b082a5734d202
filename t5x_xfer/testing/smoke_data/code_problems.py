"""MBPP-format Python problems for the smoke data: families of simple functions with varied
names and constants, whose code passes its own asserts (expected values come from a reference
function, not from the code)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from t5x_xfer.testing.smoke_data.words import Record, _words

# Each family returns (text, name, params, body lines, reference function, argument sampler).

WORDS = _words("apple level banana noon python racecar orange kayak window madam tree radar")
SENTENCES = ["hello world", "the cat sat", "one two three", "red green blue", "a b c d"]

Sampler = Callable[[random.Random], tuple]
FamilyOutput = tuple[str, str, str, list[str], Callable[..., Any], Sampler]
Family = Callable[[random.Random], FamilyOutput]


def _ints(lo: int = -50, hi: int = 50, n: int = 1) -> Sampler:
    return lambda r: tuple(r.randint(lo, hi) for _ in range(n))


def _int_list(lo: int = -20, hi: int = 40) -> Sampler:
    return lambda r: ([r.randint(lo, hi) for _ in range(r.randint(1, 6))],)


def _word(r: random.Random) -> tuple:
    return (r.choice(WORDS),)


def _sentence(r: random.Random) -> tuple:
    return (r.choice(SENTENCES),)


def _f_add_k(r: random.Random) -> FamilyOutput:
    k = r.randint(1, 20)
    name = r.choice([f"add_{k}", f"plus_{k}", f"increase_by_{k}"])
    return (
        f"Write a function to add {k} to a given number.",
        name,
        "n",
        [f"return n + {k}"],
        lambda n: n + k,
        _ints(),
    )


def _f_mul_k(r: random.Random) -> FamilyOutput:
    k = r.randint(2, 12)
    name = r.choice([f"multiply_by_{k}", f"times_{k}", f"scale_{k}"])
    return (
        f"Write a function to multiply a number by {k}.",
        name,
        "n",
        [f"return n * {k}"],
        lambda n: n * k,
        _ints(),
    )


def _f_add(r: random.Random) -> FamilyOutput:
    name = r.choice(["add", "add_numbers", "sum_two", "add_two_numbers"])
    a, b = r.choice([("a", "b"), ("x", "y"), ("m", "n")])
    return (
        "Write a function to add two numbers.",
        name,
        f"{a}, {b}",
        [f"return {a} + {b}"],
        lambda p, q: p + q,
        _ints(n=2),
    )


def _f_subtract(r: random.Random) -> FamilyOutput:
    name = r.choice(["subtract", "difference", "minus"])
    return (
        "Write a function to subtract the second number from the first.",
        name,
        "a, b",
        ["return a - b"],
        lambda a, b: a - b,
        _ints(n=2),
    )


def _f_parity(r: random.Random) -> FamilyOutput:
    even = r.random() < 0.5
    word = "even" if even else "odd"
    name = r.choice([f"is_{word}", f"check_{word}"])
    return (
        f"Write a python function to check whether the given number is {word} or not.",
        name,
        "n",
        [f"return n % 2 == {0 if even else 1}"],
        (lambda n: n % 2 == 0) if even else (lambda n: n % 2 == 1),
        _ints(0, 99),
    )


def _f_divisible(r: random.Random) -> FamilyOutput:
    k = r.randint(3, 9)
    return (
        f"Write a function to check whether a number is divisible by {k}.",
        r.choice([f"divisible_by_{k}", f"is_multiple_of_{k}"]),
        "n",
        [f"return n % {k} == 0"],
        lambda n: n % k == 0,
        lambda rr: (rr.randint(0, 20) * (k if rr.random() < 0.5 else 1),),
    )


def _f_reverse(r: random.Random) -> FamilyOutput:
    return (
        "Write a function to reverse a given string.",
        r.choice(["reverse_string", "reverse_text", "string_reverse"]),
        "s",
        ["return s[::-1]"],
        lambda s: s[::-1],
        _word,
    )


def _f_palindrome(r: random.Random) -> FamilyOutput:
    loop = r.random() < 0.5
    body = (
        ["for i in range(len(s) // 2):", "    if s[i] != s[-1 - i]:", "        return False"]
        + ["return True"]
        if loop
        else ["return s == s[::-1]"]
    )
    return (
        "Write a function to check whether the given string is a palindrome or not.",
        r.choice(["is_palindrome", "check_palindrome", "palindrome"]),
        "s",
        body,
        lambda s: s == s[::-1],
        _word,
    )


def _f_max(r: random.Random) -> FamilyOutput:
    loop = r.random() < 0.5
    body = (
        ["best = nums[0]", "for x in nums:", "    if x > best:", "        best = x", "return best"]
        if loop
        else ["return max(nums)"]
    )
    return (
        "Write a function to find the maximum element of a list.",
        r.choice(["max_element", "find_max", "largest"]),
        "nums",
        body,
        max,
        _int_list(),
    )


def _f_min(r: random.Random) -> FamilyOutput:
    return (
        "Write a function to find the minimum element of a list.",
        r.choice(["min_element", "find_min", "smallest"]),
        "nums",
        ["return min(nums)"],
        min,
        _int_list(),
    )


def _f_sum(r: random.Random) -> FamilyOutput:
    loop = r.random() < 0.5
    body = (
        ["total = 0", "for x in nums:", "    total += x", "return total"]
        if loop
        else ["return sum(nums)"]
    )
    return (
        "Write a python function to find the sum of all elements in a list.",
        r.choice(["sum_list", "list_sum", "total"]),
        "nums",
        body,
        sum,
        _int_list(),
    )


def _f_vowels(r: random.Random) -> FamilyOutput:
    return (
        "Write a function to count the vowels in a given string.",
        r.choice(["count_vowels", "vowel_count", "num_vowels"]),
        "s",
        [
            "count = 0",
            "for c in s:",
            "    if c in 'aeiouAEIOU':",
            "        count += 1",
            "return count",
        ],
        lambda s: sum(c in "aeiouAEIOU" for c in s),
        _word,
    )


def _f_count_char(r: random.Random) -> FamilyOutput:
    c = r.choice("aeiklnort")
    return (
        f"Write a function to count how many times the character '{c}' occurs in a string.",
        r.choice([f"count_{c}", f"occurrences_of_{c}"]),
        "s",
        [f"return s.count('{c}')"],
        lambda s: s.count(c),
        _word,
    )


def _f_power(r: random.Random) -> FamilyOutput:
    k = r.choice([2, 3])
    word = {2: "square", 3: "cube"}[k]
    return (
        f"Write a function to find the {word} of a number.",
        r.choice([word, f"{word}_number", f"find_{word}"]),
        "n",
        [f"return n ** {k}"],
        lambda n: n**k,
        _ints(-12, 12),
    )


def _f_upper(r: random.Random) -> FamilyOutput:
    upper = r.random() < 0.5
    word = "upper" if upper else "lower"
    return (
        f"Write a function to convert a given string to {word} case.",
        r.choice([f"to_{word}", f"make_{word}"]),
        "s",
        [f"return s.{word}()"],
        (lambda s: s.upper()) if upper else (lambda s: s.lower()),
        lambda rr: (rr.choice(WORDS).title() if upper else rr.choice(WORDS).upper(),),
    )


def _f_repeat(r: random.Random) -> FamilyOutput:
    k = r.randint(2, 4)
    return (
        f"Write a function to repeat a string {k} times.",
        r.choice([f"repeat_{k}", f"repeat_string_{k}"]),
        "s",
        [f"return s * {k}"],
        lambda s: s * k,
        _word,
    )


def _f_reverse_words(r: random.Random) -> FamilyOutput:
    return (
        "Write a function to reverse the order of the words in a sentence.",
        r.choice(["reverse_words", "words_reversed"]),
        "sentence",
        ["return ' '.join(reversed(sentence.split(' ')))"],
        lambda s: " ".join(reversed(s.split(" "))),
        _sentence,
    )


def _f_first_last(r: random.Random) -> FamilyOutput:
    first = r.random() < 0.5
    word = "first" if first else "last"
    return (
        f"Write a function to get the {word} element of a list.",
        r.choice([f"{word}_element", f"get_{word}"]),
        "items",
        [f"return items[{0 if first else -1}]"],
        (lambda xs: xs[0]) if first else (lambda xs: xs[-1]),
        _int_list(),
    )


def _f_evens(r: random.Random) -> FamilyOutput:
    return (
        "Write a function to return the even numbers of a list.",
        r.choice(["filter_even", "even_numbers", "get_evens"]),
        "nums",
        ["return [x for x in nums if x % 2 == 0]"],
        lambda xs: [x for x in xs if x % 2 == 0],
        _int_list(0, 30),
    )


def _f_length(r: random.Random) -> FamilyOutput:
    return (
        "Write a function to find the length of a list.",
        r.choice(["list_length", "count_items", "size"]),
        "items",
        ["return len(items)"],
        len,
        _int_list(),
    )


def _f_digit_sum(r: random.Random) -> FamilyOutput:
    return (
        "Write a function to find the sum of the digits of a non-negative integer.",
        r.choice(["sum_digits", "digit_sum"]),
        "n",
        ["return sum(int(d) for d in str(n))"],
        lambda n: sum(int(d) for d in str(n)),
        _ints(0, 9999),
    )


def _f_max_two(r: random.Random) -> FamilyOutput:
    return (
        "Write a python function to find the maximum of two numbers.",
        r.choice(["maximum", "max_of_two", "bigger"]),
        "a, b",
        ["if a > b:", "    return a", "return b"],
        max,
        _ints(n=2),
    )


def _f_concat(r: random.Random) -> FamilyOutput:
    return (
        "Write a function to join two strings with a space between them.",
        r.choice(["join_words", "concat_with_space"]),
        "a, b",
        ["return a + ' ' + b"],
        lambda a, b: a + " " + b,
        lambda rr: tuple(rr.sample(WORDS, 2)),
    )


FAMILIES: tuple[Family, ...] = (
    _f_add_k,
    _f_mul_k,
    _f_add,
    _f_subtract,
    _f_parity,
    _f_divisible,
    _f_reverse,
    _f_palindrome,
    _f_max,
    _f_min,
    _f_sum,
    _f_vowels,
    _f_count_char,
    _f_power,
    _f_upper,
    _f_repeat,
    _f_reverse_words,
    _f_first_last,
    _f_evens,
    _f_length,
    _f_digit_sum,
    _f_max_two,
    _f_concat,
)


def _code_problem(rng: random.Random, split: str, i: int) -> Record:
    """An MBPP record: ``code`` uses ``\\r\\n`` line ends and ``test_list`` three asserts, as
    in the real file; expected values come from a reference function, not from the code."""
    text, name, params, body, reference, sample = rng.choice(FAMILIES)(rng)
    code = "\r\n".join([f"def {name}({params}):", *("    " + line for line in body)])
    tests: list[str] = []
    while len(tests) < 3:  # every sampler has at least five distinct arguments
        args = sample(rng)
        call = ", ".join(repr(a) for a in args)
        test = f"assert {name}({call}) == {reference(*args)!r}"
        if test not in tests:
            tests.append(test)
    return {
        "text": text,
        "code": code,
        "task_id": i,
        "test_setup_code": "",
        "test_list": tests,
        "challenge_test_list": [],
    }

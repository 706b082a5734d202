"""CCGbank AUTO text for the smoke data: derivations built from a tiny grammar, so the
supertags follow from the words and their positions."""

from __future__ import annotations

import random

from t5x_xfer.testing.smoke_data.words import (
    ADJECTIVES,
    ADVERBS,
    INTRANSITIVE,
    NAMES,
    NOUNS,
    VERBS,
)


def _leaf(cat: str, pos: str, word: str) -> tuple[str, list[tuple[str, str]]]:
    return f"(<L {cat} {pos} {pos} {word} {cat}>)", [(word, cat)]


def _node(cat: str, head: int, *kids: tuple[str, list[tuple[str, str]]]) -> tuple[str, list]:
    text = " ".join(k[0] for k in kids)
    return f"(<T {cat} {head} {len(kids)}> {text} )", [w for k in kids for w in k[1]]


def _ccg_np(rng: random.Random, plural_ok: bool) -> tuple[str, list]:
    choice = rng.randrange(3 if plural_ok else 2)
    if choice == 0:
        return _node("NP", 0, _leaf("N", "NNP", rng.choice(NAMES)))
    noun: tuple[str, list] = _leaf("N", "NN", rng.choice(NOUNS)[0])
    if rng.random() < 0.5:
        noun = _node("N", 1, _leaf("N/N", "JJ", rng.choice(ADJECTIVES)), noun)
    if choice == 1:
        return _node("NP", 1, _leaf("NP[nb]/N", "DT", "the"), noun)
    return _node("NP", 0, _leaf("N", "NNS", rng.choice(NOUNS)[1]))


def _ccg_sentence(rng: random.Random) -> tuple[str, list]:
    subject = _ccg_np(rng, plural_ok=False)
    if rng.random() < 0.5:
        verb = _leaf("(S[dcl]\\NP)/NP", "VBZ", rng.choice(VERBS)[2])
        vp = _node("S[dcl]\\NP", 0, verb, _ccg_np(rng, plural_ok=True))
    else:
        vp = _leaf("S[dcl]\\NP", "VBZ", rng.choice(INTRANSITIVE))
    if rng.random() < 0.3:
        vp = _node("S[dcl]\\NP", 0, vp, _leaf("(S\\NP)\\(S\\NP)", "RB", rng.choice(ADVERBS)))
    sentence = _node("S[dcl]", 1, subject, vp)
    return _node("S[dcl]", 0, sentence, _leaf(".", ".", "."))


def _ccg_auto(rng: random.Random, section: int, n: int) -> str:
    lines = []
    for k in range(1, n + 1):
        tree, _ = _ccg_sentence(rng)
        lines += [f"ID=wsj_{section:02d}01.{k} PARSER=SMOKE NUMPARSE=1", tree]
    return "\n".join(lines) + "\n"

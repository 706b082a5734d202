"""Word lists shared by the smoke data's templates, and the per-(seed, dataset, split) RNG."""

from __future__ import annotations

import random
from typing import Any

Record = dict[str, Any]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


NAMES = _words(
    "Anna Ben Carla David Elena Farid Grace Hiro Ines Jonas Kofi Lena Mateo Nadia Omar Priya "
    "Quinn Rosa Sven Tara"
)
CITIES = _words("Lisbon Oslo Nairobi Lima Hanoi Dublin Quito Accra Porto Riga Tunis Cusco")
PLACES = _words("park kitchen library garden station office market museum beach school")
JOBS = _words("teacher nurse baker pilot farmer painter chef lawyer driver doctor")
FOODS = _words("soup rice pasta bread cheese apples noodles curry salad tacos")
DAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
ADJECTIVES = _words("big small red old new quiet bright heavy")
# (base, past, third person) for transitive verbs.
VERBS = [
    ("paint", "painted", "paints"),
    ("watch", "watched", "watches"),
    ("open", "opened", "opens"),
    ("carry", "carried", "carries"),
    ("clean", "cleaned", "cleans"),
    ("find", "found", "finds"),
    ("buy", "bought", "buys"),
    ("see", "saw", "sees"),
    ("follow", "followed", "follows"),
    ("like", "liked", "likes"),
]
INTRANSITIVE = _words("sleeps laughs runs waits sings works falls smiles")
ADVERBS = _words("quickly slowly quietly often again")
# (singular, plural)
NOUNS = [
    ("cat", "cats"),
    ("dog", "dogs"),
    ("book", "books"),
    ("car", "cars"),
    ("box", "boxes"),
    ("letter", "letters"),
    ("window", "windows"),
    ("bird", "birds"),
    ("child", "children"),
    ("song", "songs"),
]


def _rng(seed: int, *parts: str) -> random.Random:
    """An RNG per (seed, dataset, split): string seeds hash with SHA-512, so streams are
    independent and reproducible across processes (unlike ``hash()``)."""
    return random.Random("/".join([str(seed), *parts]))

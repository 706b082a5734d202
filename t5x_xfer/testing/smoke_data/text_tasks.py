"""Generators for the text tasks' smoke records: ``(rng, split, i) -> record`` in each source's
own format (GLUE, ANLI, SNLI, SQuAD, HellaSwag, Cosmos QA, CNN/DailyMail, CommonsenseQA).

Labels follow from the text (templated entailment and contradiction, paraphrased or different
questions, answers that are spans of their context, summaries that are the article's first
sentence), so a tiny model can learn something in a few hundred steps.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from t5x_xfer.testing.smoke_data.words import (
    ADJECTIVES,
    CITIES,
    DAYS,
    FOODS,
    JOBS,
    NAMES,
    NOUNS,
    PLACES,
    VERBS,
    Record,
    _words,
)

NLI_LABELS = ("entailment", "neutral", "contradiction")


def _nli_pair(rng: random.Random) -> tuple[str, str, int]:
    """A premise and a hypothesis whose label follows from templates."""
    name, other = rng.sample(NAMES, 2)
    base, past, _ = rng.choice(VERBS)
    adj = rng.choice(ADJECTIVES)
    noun = rng.choice(NOUNS)[0]
    place = rng.choice(PLACES)
    premise = f"{name} {past} the {adj} {noun} in the {place}."
    label = rng.randrange(3)
    if label == 0:
        hypothesis = rng.choice(
            [
                f"{name} {past} the {noun}.",
                f"Someone {past} a {noun}.",
                f"{name} was in the {place}.",
                f"The {noun} was {adj}.",
            ]
        )
    elif label == 1:
        hypothesis = rng.choice(
            [
                f"{name} {past} the {noun} on {rng.choice(DAYS)}.",
                f"{name} {past} the {noun} with {other}.",
                f"{name} is a {rng.choice(JOBS)}.",
                f"{name} went to the {place} to eat {rng.choice(FOODS)}.",
            ]
        )
    else:
        hypothesis = rng.choice(
            [
                f"{name} did not {base} the {noun}.",
                f"Nobody {past} anything.",
                f"{name} was never in the {place}.",
                f"The {noun} was not {adj}.",
            ]
        )
    return premise, hypothesis, label


def _mnli(rng: random.Random, split: str, i: int) -> Record:
    premise, hypothesis, label = _nli_pair(rng)
    return {"premise": premise, "hypothesis": hypothesis, "label": label, "idx": i}


def _snli(rng: random.Random, split: str, i: int) -> Record:
    premise, hypothesis, label = _nli_pair(rng)
    return {"premise": premise, "hypothesis": hypothesis, "label": label}


def _anli(round_: int) -> Callable[[random.Random, str, int], Record]:
    def make(rng: random.Random, split: str, i: int) -> Record:
        premise, hypothesis, label = _nli_pair(rng)
        context = f"{premise} It was a {rng.choice(ADJECTIVES)} day in {rng.choice(CITIES)}."
        uid = f"smoke-r{round_}-{split}-{i:05d}"
        return {"uid": uid, "context": context, "hypothesis": hypothesis, "label": label}

    return make


QQP_INTENTS = [
    ("How do I learn {t}?", "What is the best way to learn {t}?", "How can I get better at {t}?"),
    ("Why is {t} so hard?", "What makes {t} difficult?", "Why do people find {t} hard?"),
    ("How do I start a career in {t}?", "How can I begin working in {t}?"),
    ("Is {t} worth learning?", "Should I spend time learning {t}?"),
    ("How much does a {o} cost?", "What is the price of a {o}?"),
    ("Where can I buy a cheap {o}?", "What is a good place to buy an affordable {o}?"),
]
QQP_TOPICS = _words("Python chess cooking guitar painting German statistics swimming")
QQP_OBJECTS = _words("bicycle laptop camera tent phone piano")


def _qqp_question(intent: int, slot_t: str, slot_o: str, rng: random.Random) -> str:
    return rng.choice(QQP_INTENTS[intent]).format(t=slot_t, o=slot_o)


def _qqp(rng: random.Random, split: str, i: int) -> Record:
    intent = rng.randrange(len(QQP_INTENTS))
    t, o = rng.choice(QQP_TOPICS), rng.choice(QQP_OBJECTS)
    q1 = _qqp_question(intent, t, o, rng)
    label = rng.randrange(2)  # 1 = duplicate
    if label == 1:
        phrasings = [p for p in QQP_INTENTS[intent] if p.format(t=t, o=o) != q1]
        q2 = rng.choice(phrasings).format(t=t, o=o)
    elif rng.random() < 0.5:  # same question shape, different subject
        t2 = rng.choice([x for x in QQP_TOPICS if x != t])
        o2 = rng.choice([x for x in QQP_OBJECTS if x != o])
        q2 = _qqp_question(intent, t2, o2, rng)
    else:
        other = rng.choice([k for k in range(len(QQP_INTENTS)) if k != intent])
        q2 = _qqp_question(other, t, o, rng)
    return {"question1": q1, "question2": q2, "label": label, "idx": i}


SST_POSITIVE = _words("gripping funny moving charming brilliant warm clever beautiful")
SST_NEGATIVE = _words("dull boring clumsy tedious awful flat lifeless predictable")
SST_THINGS = _words("film story acting script ending cast direction soundtrack")


def _sst2(rng: random.Random, split: str, i: int) -> Record:
    label = rng.randrange(2)
    same, opposite = (SST_POSITIVE, SST_NEGATIVE) if label else (SST_NEGATIVE, SST_POSITIVE)
    a, b = rng.sample(same, 2)
    thing = rng.choice(SST_THINGS)
    sentence = rng.choice(
        [
            f"a {a} and {b} {thing}",
            f"the {thing} is {a}",
            f"{a} , {b} and never {rng.choice(opposite)}",
            f"the {thing} is not {rng.choice(opposite)} at all",
            f"an utterly {a} {thing} from start to finish",
        ]
    )
    return {"sentence": sentence, "label": label, "idx": i}


def _squad_context(rng: random.Random) -> tuple[str, dict[tuple[str, str], tuple[str, int]]]:
    """Facts about two people; returns the context and (person, fact) -> (answer, start)."""
    people = rng.sample(NAMES, 2)
    facts = {
        "city": rng.sample(CITIES, 2),
        "job": rng.sample(JOBS, 2),
        "food": rng.sample(FOODS, 2),
    }
    templates = {
        "city": "{p} lives in {x}.",
        "job": "{p} works as a {x}.",
        "food": "The favourite food of {p} is {x}.",
    }
    order = [(k, j) for k in templates for j in range(2)]
    rng.shuffle(order)
    context, spans = "", {}
    for kind, j in order:
        sentence = templates[kind].format(p=people[j], x=facts[kind][j])
        start = len(context) + (1 if context else 0) + sentence.index(facts[kind][j])
        context = f"{context} {sentence}" if context else sentence
        spans[(people[j], kind)] = (facts[kind][j], start)
    return context, spans


SQUAD_QUESTIONS = {
    "city": "Where does {p} live?",
    "job": "What does {p} work as?",
    "food": "What is the favourite food of {p}?",
}


def _squad_v1(rng: random.Random, split: str, i: int) -> Record:
    context, spans = _squad_context(rng)
    (person, kind), (answer, start) = rng.choice(sorted(spans.items()))
    copies = 1 if split == "train" else 3  # SQuAD's dev set has several gold answers
    return {
        "id": f"smoke-{split}-{i:05d}",
        "title": f"Smoke data: {person}",
        "context": context,
        "question": SQUAD_QUESTIONS[kind].format(p=person),
        "answers": {"text": [answer] * copies, "answer_start": [start] * copies},
    }


def _squad_v2(rng: random.Random, split: str, i: int) -> Record:
    record = _squad_v1(rng, split, i)
    empty = {"text": [], "answer_start": []}
    if rng.random() < 1 / 3:  # ask about someone the context does not mention
        absent = rng.choice([n for n in NAMES if n not in record["context"]])
        kind = rng.choice(sorted(SQUAD_QUESTIONS))
        plausible = record["answers"]
        record.update(
            question=SQUAD_QUESTIONS[kind].format(p=absent),
            answers=empty,
            is_impossible=True,
            plausible_answers={k: v[:1] for k, v in plausible.items()},
        )
    else:
        record.update(is_impossible=False, plausible_answers=empty)
    return record


HELLASWAG_ACTIVITIES = [
    ("Cooking", "a frying pan", "cooks an egg in it."),
    ("Gardening", "a watering can", "waters the flowers."),
    ("Painting", "a brush", "paints the fence."),
    ("Cleaning", "a mop", "cleans the floor."),
    ("Playing guitar", "a guitar", "plays a song on it."),
    ("Reading", "a book", "reads the first page."),
    ("Playing catch", "a ball", "throws it to a friend."),
    ("Baking", "a bag of flour", "mixes it into the dough."),
    ("Writing", "a pen", "writes a letter."),
    ("Fishing", "a fishing rod", "casts the line into the lake."),
]


def _hellaswag(rng: random.Random, split: str, i: int) -> Record:
    right, *wrong = rng.sample(HELLASWAG_ACTIVITIES, 4)
    name, place = rng.choice(NAMES), rng.choice(PLACES)
    endings = [a[2] for a in wrong]
    label = rng.randrange(4)
    endings.insert(label, right[2])
    return {
        "activity_label": right[0],
        "context": f"{name} walks into the {place} and picks up {right[1]}. {name}",
        "endings": endings,
        "label": label,
        "source_id": f"smoke-{split}-{i:05d}",
        "split_type": "indomain",
    }


COSMOS_EVENTS = [
    ("missed the bus", "walked to work"),
    ("forgot my umbrella", "got wet in the rain"),
    ("stayed up late", "felt tired the next morning"),
    ("found a wallet", "took it to the police"),
    ("burned the dinner", "ordered a pizza"),
    ("lost my keys", "called a locksmith"),
    ("won a prize", "celebrated with my friends"),
    ("felt sick", "stayed home all day"),
]


def _cosmos_qa(rng: random.Random, split: str, i: int) -> Record:
    (cause, effect), *others = rng.sample(COSMOS_EVENTS, 3)
    context = (
        f"Last {rng.choice(DAYS)} I {cause}, so I {effect}. It was a {rng.choice(ADJECTIVES)} day."
    )
    if rng.random() < 0.5:
        question = f"Why did I {effect}?"
        right, wrong = f"Because I {cause}.", [f"Because I {c}." for c, _ in others]
    else:
        question = f"What did I do after I {cause}?"
        right, wrong = f"I {effect}.", [f"I {e}." for _, e in others]
    answers = [*wrong, "None of the above choices."]
    label = rng.randrange(3)
    answers.insert(label, right)
    record = {f"answer{k}": answers[k] for k in range(4)}
    return {
        "id": f"smoke-{split}-{i:05d}",
        "context": context,
        "question": question,
        **record,
        "label": label,
    }


CNN_STORIES: list[tuple[str, list[str]]] = [
    (
        "Officials in {city} announced on {day} that a new {facility} will open next year.",
        [
            "The project will cost {n} million dollars, according to a statement.",
            "{name}, who lives nearby, said the {facility} would help the community.",
            "Construction is expected to start in the spring.",
            "Some residents said they were worried about traffic.",
        ],
    ),
    (
        "Heavy {weather} hit {city} on {day}, closing schools and several roads.",
        [
            "Forecasters expect the {weather} to continue for {k} more days.",
            "{name}, a local {job}, said it was the worst in years.",
            "No injuries were reported.",
            "Trains were delayed by up to {k} hours.",
        ],
    ),
    (
        "The {team} beat their rivals {a}-{b} in {city} on {day} to win the cup.",
        [
            "{name} scored twice in the second half.",
            "It is the first title for the {team} in {k} years.",
            "About {n} thousand fans watched the match.",
            "The coach praised the players after the game.",
        ],
    ),
    (
        "Researchers in {city} say that {animal} can recognise human faces.",
        [
            "The study followed {n} {animal} over {k} years.",
            "{name}, who led the work, said the results were surprising.",
            "The team now plans to repeat the experiment.",
            "The findings were published on {day}.",
        ],
    ),
]
CNN_SLOTS: dict[str, Sequence[str]] = {
    "facility": ("library", "hospital", "bridge", "stadium", "school", "park"),
    "weather": ("snow", "rain", "wind", "hail"),
    "team": ("Lions", "Tigers", "Eagles", "Sharks", "Wolves"),
    "animal": ("crows", "goats", "bees", "pigeons", "sheep"),
}


def _cnn_dailymail(rng: random.Random, split: str, i: int) -> Record:
    first, rest = rng.choice(CNN_STORIES)
    slots = {k: rng.choice(v) for k, v in CNN_SLOTS.items()}
    slots.update(
        city=rng.choice(CITIES),
        day=rng.choice(DAYS),
        name=rng.choice(NAMES),
        job=rng.choice(JOBS),
        n=str(rng.randint(2, 90)),
        k=str(rng.randint(2, 9)),
    )
    slots["a"] = str(rng.randint(1, 5))
    slots["b"] = str(rng.randint(0, int(slots["a"]) - 1))
    body = rng.sample(rest, rng.randint(2, len(rest)))
    sentences = [s.format(**slots) for s in [first, *body]]
    return {
        "article": " ".join(sentences),
        "highlights": sentences[0],
        "id": f"smoke-{split}-{i:05d}",
        "publisher": rng.choice(("cnn", "dm")),
    }


CSQA_KINDS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Where would you most likely find a {x}?",
        [
            ("book", "library"),
            ("stove", "kitchen"),
            ("whale", "ocean"),
            ("cactus", "desert"),
            ("train", "station"),
            ("painting", "museum"),
            ("tent", "campsite"),
            ("shower", "bathroom"),
        ],
    ),
    (
        "What do people usually use a {x} for?",
        [
            ("knife", "cutting food"),
            ("umbrella", "staying dry"),
            ("pen", "writing"),
            ("ladder", "reaching high places"),
            ("key", "opening a lock"),
            ("map", "finding the way"),
            ("clock", "telling the time"),
        ],
    ),
    (
        "What is likely to happen if you {x}?",
        [
            ("drop a glass", "it breaks"),
            ("skip lunch", "you get hungry"),
            ("run a marathon", "you feel tired"),
            ("leave ice in the sun", "it melts"),
            ("forget to charge a phone", "the battery dies"),
            ("plant a seed", "it grows"),
        ],
    ),
]


def _commonsense_qa(rng: random.Random, split: str, i: int) -> Record:
    question, pairs = rng.choice(CSQA_KINDS)
    (concept, answer), *others = rng.sample(pairs, 5)
    texts = [o[1] for o in others]
    key = rng.randrange(5)
    texts.insert(key, answer)
    return {
        "id": f"smoke-{split}-{i:05d}",
        "question": question.format(x=concept),
        "question_concept": concept,
        "choices": {"label": list("ABCDE"), "text": texts},
        "answerKey": "ABCDE"[key],
    }

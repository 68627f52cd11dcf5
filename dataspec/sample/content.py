"""What the pages say and show: series titles, cast names, places, and the lettered lines.

Word lists and the small generators that draw from them with the page's RNG (no pixels).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

SERIES_TITLES: tuple[str, ...] = (
    "The Amazing Spider-Man (2018) 001",
    "Saga #12",
    "Batman - Year One 02",
    "Y - The Last Man 010",
    "Paper Girls #3",
    "Hellboy & the B.P.R.D. 1952 01",
    "Sandman Vol. 2 - The Doll's House",
    "Monstress 004",
    "Invincible #50",
    "Lumberjanes 017",
    "Black Hammer '45 01",
    "Usagi Yojimbo (1996) 120",
    "Daredevil - Born Again (Part 3)",
    "Locke & Key - Welcome to Lovecraft 1",
    "Giant Days #24",
    "Squirrel Girl, Vol. 1",
    "Fables 075",
    "East of West #7",
    "Descender (2015) 002",
    "The Wicked + The Divine 033",
)
TWIN_PAIRS: tuple[tuple[str, str], ...] = (
    ("X-Men 01", "X Men 01"),
    ("Spider-Gwen #5", "Spider Gwen 5"),
    ("She-Hulk (2014) 01", "She Hulk 2014 01"),
    ("Ms. Marvel 001", "ms marvel 001"),
)
EXTRA_TITLES: tuple[str, ...] = (
    "Starfall",
    "Night Owls",
    "Iron Tide",
    "Ghost Harbor",
    "Red Meridian",
    "Hollow Crown",
    "Paper Moon",
    "Static Saints",
    "Blue Comet",
    "Wild Hunt",
)
NAMES: tuple[str, ...] = (
    "Peter",
    "Miles",
    "Gwen",
    "Alana",
    "Marko",
    "Kamala",
    "Logan",
    "Jean",
    "Hazel",
    "Izabel",
    "Bruce",
    "Selina",
    "Mac",
    "Erin",
    "Tiffany",
    "Ororo",
    "Usagi",
    "Maika",
    "Kippa",
    "Yorick",
    "Tilda",
    "Ripley",
    "Bodie",
    "Nadia",
)
PLACES: tuple[tuple[str, str], ...] = (
    ("on", "a rain-soaked rooftop"),
    ("in", "a narrow alley"),
    ("on", "a starship bridge"),
    ("in", "a forest clearing"),
    ("in", "an all-night diner"),
    ("on", "a subway platform"),
    ("in", "a cluttered laboratory"),
    ("in", "a ruined throne room"),
    ("on", "a busy city street"),
    ("in", "a desert canyon"),
    ("in", "a school hallway"),
    ("on", "a fishing pier"),
)
SHOTS: tuple[str, ...] = ("Wide shot", "Medium shot", "Close-up", "Low-angle shot", "Long shot")
MOODS: tuple[str, ...] = ("tense", "playful", "ominous", "melancholy", "urgent", "hopeful")
ACTIONS: tuple[str, ...] = (
    "points at something off-panel",
    "runs toward the reader",
    "crouches behind cover",
    "turns away",
    "raises a fist",
    "looks over a shoulder",
    "reaches out a hand",
    "listens intently",
    "steps back in surprise",
    "holds up a glowing device",
)
PLOTS: tuple[str, ...] = (
    "argue about the missing signal",
    "plan their escape",
    "confront a hidden enemy",
    "search for a lost friend",
    "regroup after the ambush",
    "uncover an old secret",
)
INTERJECTIONS: tuple[str, ...] = (
    "WAIT",
    "LOOK OUT",
    "LISTEN",
    "HEY",
    "NO",
    "COME ON",
    "HOLD ON",
    "EASY",
)
SUBJECTS: tuple[str, ...] = ("WE", "THEY", "YOU", "I")
VERBS: tuple[str, ...] = (
    "HAVE TO FIND",
    "CAN'T TRUST",
    "NEED TO STOP",
    "NEVER SHOULD'VE LEFT",
    "ALREADY LOST",
    "WON'T LET GO OF",
    "HAVE TO WARN",
    "CAN STILL SAVE",
)
OBJECTS: tuple[str, ...] = (
    "THE SHIP",
    "THE KID",
    "THIS CITY",
    "THAT SIGNAL",
    "THE REACTOR",
    "THE MAP",
    "THE KEY",
    "EVERYONE",
    "THE TRAIN",
    "THE OLD MAN",
)
QUESTIONS: tuple[str, ...] = (
    "WHERE DID {name} GO?",
    "DID YOU HEAR THAT?",
    "WHAT IS THAT THING?",
    "WHY WOULD {name} LIE TO US?",
    "ARE YOU SURE ABOUT THIS?",
    "HOW LONG DO WE HAVE?",
)
SHORT_LINES: tuple[str, ...] = (
    "RUN!",
    "NOT AGAIN...",
    "GOT IT!",
    "STAY CLOSE.",
    "TRUST ME.",
    "IT'S A TRAP!",
    "NOW!",
)
THOUGHTS: tuple[str, ...] = (
    "I SHOULD HAVE TOLD {name}...",
    "MAYBE THIS WAS A MISTAKE.",
    "{name} CAN'T KNOW ABOUT THIS.",
    "KEEP IT TOGETHER.",
    "JUST ONE MORE STEP...",
)
NARRATIONS: tuple[str, ...] = (
    "MEANWHILE...",
    "THREE HOURS LATER.",
    "{place}. MIDNIGHT.",
    "{name} NEVER SAW IT COMING.",
    "THE NEXT MORNING...",
    "SOMEWHERE ACROSS TOWN...",
    "IT HAD BEEN RAINING FOR DAYS.",
)
SFX_WORDS: tuple[str, ...] = (
    "BLAM!",
    "KRAK!",
    "THWIP!",
    "BOOM!",
    "ZZZAK!",
    "WHAM!",
    "SKREEE!",
    "KA-CHUNK!",
)


def norm_key(name: str) -> str:
    """Lower-case alphanumerics only: the key under which punctuation twins collide."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def series_names(rng: random.Random, count: int) -> list[str]:
    """``count`` series names: a punctuation-twin pair (when count >= 2) plus distinct others."""
    names: list[str] = []
    if count >= 2:
        names.extend(rng.choice(TWIN_PAIRS))
    keys = {norm_key(n) for n in names}
    pool = list(SERIES_TITLES)
    rng.shuffle(pool)
    while len(names) < count:
        if pool:
            cand = pool.pop()
        else:
            year, issue = rng.randint(1985, 2024), rng.randint(1, 99)
            cand = f"{rng.choice(EXTRA_TITLES)} ({year}) {issue:03d}"
        if norm_key(cand) not in keys:
            keys.add(norm_key(cand))
            names.append(cand)
    return names


def who(names: Sequence[str]) -> str:
    """Join names as English prose: 'A', 'A and B', 'A, B and C'."""
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def dialogue(rng: random.Random, cast: Sequence[str]) -> str:
    """A short spoken line."""
    name = rng.choice(cast).upper()
    roll = rng.random()
    if roll < 0.3:
        return (
            f"{rng.choice(INTERJECTIONS)}, {name}! {rng.choice(SUBJECTS)} {rng.choice(VERBS)} "
            f"{rng.choice(OBJECTS)}!"
        )
    if roll < 0.6:
        return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
    if roll < 0.85:
        return rng.choice(QUESTIONS).format(name=name)
    return rng.choice(SHORT_LINES)


def thought(rng: random.Random, cast: Sequence[str]) -> str:
    """A short thought line."""
    return rng.choice(THOUGHTS).format(name=rng.choice(cast).upper())


def narration(rng: random.Random, cast: Sequence[str], place: str) -> str:
    """A short caption-box narration line (``place`` as 'in a narrow alley')."""
    where = place.split(" ", 1)[1].upper()
    return rng.choice(NARRATIONS).format(name=rng.choice(cast).upper(), place=where)

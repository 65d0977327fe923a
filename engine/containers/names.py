"""Container names: Docker's validation rule and its `adjective_surname` generated names."""

from __future__ import annotations

import random
import re

from ..errors import BadRequest

_VALID = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_ADJECTIVES = (
    "admiring adoring affectionate agitated amazing angry awesome blissful bold boring brave "
    "busy charming clever compassionate competent condescending confident cool cranky crazy "
    "dazzling determined distracted dreamy eager ecstatic elastic elated elegant eloquent epic "
    "fervent festive flamboyant focused friendly frosty gallant gifted goofy gracious happy "
    "hardcore heuristic hopeful hungry infallible inspiring jolly jovial keen kind laughing "
    "loving lucid magical modest musing mystifying naughty nervous nice nifty nostalgic "
    "objective optimistic peaceful pedantic pensive practical priceless quirky quizzical "
    "relaxed reverent romantic sad serene sharp silly sleepy stoic strange stupefied suspicious "
    "sweet tender thirsty trusting unruffled upbeat vibrant vigilant vigorous wizardly wonderful "
    "xenodochial youthful zealous zen"
).split()
_SURNAMES = (
    "albattani allen almeida archimedes ardinghelli babbage banach bardeen bartik bassi bell "
    "benz bhabha blackwell bohr booth borg bose boyd brahmagupta brattain brown carson cerf "
    "chandrasekhar chaplygin clarke colden cori cray curie darwin davinci dijkstra dubinsky "
    "easley edison einstein elion engelbart euclid euler fermat fermi feynman franklin galileo "
    "gates goldberg goldstine golick goodall hamilton hawking heisenberg hermann hertz hodgkin "
    "hoover hopper hugle hypatia jackson jang jennings jepsen johnson joliot jones kalam kepler "
    "khorana kilby kirch knuth kowalevski lalande lamarr lamport leakey leavitt lewin liskov "
    "lovelace lumiere mahavira mayer mccarthy mcclintock mclean meitner mendel merkle mirzakhani "
    "morse murdock napier newton nightingale nobel noether northcutt noyce panini pare pascal "
    "pasteur payne perlman pike poincare ptolemy raman ramanujan ride ritchie roentgen rosalind "
    "saha sammet shannon shaw shirley shockley sinoussi snyder spence stonebraker sutherland "
    "swanson swartz swirles tesla thompson torvalds turing varahamihira visvesvaraya volhard "
    "wescoff wiles williams wilson wing wozniak wright yalow yonath"
).split()


def validate(name: str) -> str:
    """Return `name` without its leading slash, or raise Docker's 400."""
    if not _VALID.match(name):
        raise BadRequest(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def generate(taken: set[str]) -> str:
    """A fresh `adjective_surname` not in `taken` (a digit is appended after collisions)."""
    for attempt in range(100):
        name = f"{random.choice(_ADJECTIVES)}_{random.choice(_SURNAMES)}"
        if attempt > 10:
            name += str(random.randint(0, 9))
        if name not in taken:
            return name
    raise RuntimeError("could not generate a unique container name")

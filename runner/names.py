"""Readable unique job names, in Azure ML's style (`frank_leaf_9w2bqm5fcs`): easy to say, never reused."""

from __future__ import annotations

import re
import secrets

_ADJECTIVES = (
    "amber", "brave", "calm", "clever", "cosmic", "crisp", "dreamy", "eager", "fancy", "frank", "gentle",
    "happy", "honest", "jolly", "keen", "kind", "lively", "loyal", "lucid", "mellow", "merry", "neat", "nice",
    "nimble", "patient", "plucky", "polite", "proud", "quiet", "quick", "rapid", "sharp", "shy", "silly",
    "sincere", "sleepy", "smart", "snappy", "sturdy", "sunny", "sweet", "swift", "tender", "tidy", "upbeat",
    "vivid", "warm", "witty", "zen",
)
_NOUNS = (
    "apple", "arch", "bird", "boat", "brook", "cactus", "camel", "candle", "cloud", "comet", "coral", "crane",
    "engine", "falcon", "fern", "fig", "forest", "garden", "glove", "grape", "hat", "heron", "island", "jelly",
    "kettle", "kite", "lamp", "leaf", "lemon", "lion", "lizard", "maple", "moon", "nail", "night", "ocean",
    "onion", "orange", "owl", "pencil", "pepper", "plum", "pond", "rabbit", "river", "rocket", "salt", "seed",
    "shark", "spoon", "star", "stone", "tiger", "tomato", "tree", "tulip", "wall", "whale", "window", "yak",
)
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"

# What Azure ML accepts for `--name`; also keeps names safe as folder names, labels and MLflow filter values.
VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")


def new_name() -> str:
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}_{suffix}"


def is_valid(name: str) -> bool:
    return bool(VALID.match(name))

"""Small text helpers shared by the demo nodes: tokens, stems, stopwords, sentences, trigrams."""

from __future__ import annotations

import re

# fmt: off
STOPWORDS = frozenset({
    "a", "about", "after", "all", "an", "and", "any", "are", "as", "at", "be", "been", "before",
    "but", "by", "can", "could", "did", "do", "does", "during", "each", "every", "for", "from",
    "get", "gets", "had", "has", "have", "he", "her", "his", "how", "i", "in", "into", "is",
    "it", "its", "made", "make", "many", "much", "not", "of", "off", "on", "once", "one", "or",
    "our", "out", "over", "she", "so", "some", "than", "that", "the", "their", "them", "then",
    "there", "these", "they", "this", "to", "up", "was", "we", "were", "what", "when", "where",
    "which", "while", "who", "whom", "whose", "why", "will", "with", "would", "you"
})
# fmt: on

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SUFFIXES = ("ing", "ed", "es", "s")


def tokens(text: str) -> list[str]:
    """Split text into lower-case alphanumeric tokens.

    Args:
        text: Any text.

    Returns:
        The tokens in order, stopwords included.
    """
    return _WORD.findall(text.lower())


def stem(token: str) -> str:
    """Strip one common English suffix, keeping at least three characters.

    Args:
        token: A lower-case token.

    Returns:
        The crude stem ("founded" -> "found", "seabirds" -> "seabird").
    """
    for suffix in _SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            return token[: -len(suffix)]
    return token


def content_stems(text: str) -> list[str]:
    """Stems of the non-stopword tokens of ``text``, in order.

    Args:
        text: Any text.

    Returns:
        Stemmed content tokens.
    """
    return [stem(t) for t in tokens(text) if t not in STOPWORDS]


def sentences(text: str) -> list[str]:
    """Split text into sentences at ``.``, ``!`` or ``?`` followed by whitespace.

    Args:
        text: Any text.

    Returns:
        The non-empty sentences, stripped.
    """
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def trigrams(text: str) -> set[str]:
    """Character trigrams of each content word, padded with spaces at both ends.

    Args:
        text: Any text.

    Returns:
        The set of trigrams.
    """
    grams: set[str] = set()
    for token in tokens(text):
        if token in STOPWORDS:
            continue
        padded = f" {token} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams

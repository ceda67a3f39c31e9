"""Loading the shipped corpus and dataset, and the cached search index built over the corpus."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from wtb_domain.demo.text import content_stems, tokens, trigrams

DEMO_DIR = Path(__file__).resolve().parent
CORPUS_PATH = DEMO_DIR / "corpus.json"
DATASET_PATH = DEMO_DIR / "dataset.jsonl"


def load_corpus() -> list[dict[str, Any]]:
    """Read the shipped corpus.

    Returns:
        A fresh list of documents, each ``{"id", "title", "text"}``.
    """
    docs: list[dict[str, Any]] = json.loads(CORPUS_PATH.read_text(encoding="utf-8"))
    return docs


def load_dataset() -> list[dict[str, Any]]:
    """Read the shipped question-answering dataset.

    Returns:
        A fresh list of cases, each ``{"id", "input": {"question"}, "expected": {"answer"}}``.
    """
    lines = DATASET_PATH.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@dataclass(frozen=True)
class IndexedDoc:
    """A corpus document with its precomputed token views."""

    id: str
    text: str
    tokens: tuple[str, ...]
    stems: tuple[str, ...]
    stem_counts: Counter[str]
    trigrams: frozenset[str]


@dataclass(frozen=True)
class Index:
    """Precomputed statistics over the whole corpus."""

    docs: tuple[IndexedDoc, ...]
    stem_df: Counter[str]
    trigram_df: Counter[str]
    avg_len: float

    def stem_idf(self, stem: str) -> float:
        """BM25 inverse document frequency of a stem (always positive)."""
        df = self.stem_df.get(stem, 0)
        return math.log(1 + (len(self.docs) - df + 0.5) / (df + 0.5))

    def trigram_idf(self, gram: str) -> float:
        """Smoothed inverse document frequency of a character trigram."""
        return math.log((1 + len(self.docs)) / (1 + self.trigram_df.get(gram, 0)))


def _indexed(doc: dict[str, Any]) -> IndexedDoc:
    text = str(doc["text"])
    stems = tuple(content_stems(text))
    return IndexedDoc(
        id=str(doc["id"]),
        text=text,
        tokens=tuple(tokens(text)),
        stems=stems,
        stem_counts=Counter(stems),
        trigrams=frozenset(trigrams(text)),
    )


@cache
def corpus_index() -> Index:
    """Build (once per process) the search index over the shipped corpus.

    Returns:
        The shared, immutable index.
    """
    docs = tuple(_indexed(d) for d in load_corpus())
    stem_df: Counter[str] = Counter()
    trigram_df: Counter[str] = Counter()
    for doc in docs:
        stem_df.update(set(doc.stems))
        trigram_df.update(doc.trigrams)
    avg_len = sum(len(d.stems) for d in docs) / max(len(docs), 1)
    return Index(docs, stem_df, trigram_df, avg_len)

"""Retrieve and rerank nodes: three retrievers, three rerankers and the post-rerank router.

Every node reads ``state["question"]`` (and ``state["docs"]`` for rerankers) and returns
``{"docs": [{"id", "text", "score"}, ...]}``, best first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wtb_domain.demo.data import Index, IndexedDoc, corpus_index
from wtb_domain.demo.metering import record_usage, simulate_latency
from wtb_domain.demo.text import content_stems, stem, tokens, trigrams
from wtb_domain.workflow import NodeContext, State

Scorer = Callable[[str, Index, NodeContext], list[float]]


def _top_k(index: Index, scores: list[float], k: int) -> list[dict[str, Any]]:
    ranked = sorted(range(len(scores)), key=lambda i: -scores[i])
    return [
        {"id": index.docs[i].id, "text": index.docs[i].text, "score": round(scores[i], 4)}
        for i in ranked[:k]
        if scores[i] > 0
    ]


def _retrieve(state: State, ctx: NodeContext, scorer: Scorer) -> dict[str, Any]:
    simulate_latency(ctx)
    question = str(state["question"])
    index = corpus_index()
    scores = scorer(question, index, ctx)
    record_usage(ctx, len(tokens(question)) + sum(len(d.tokens) for d in index.docs))
    return {"docs": _top_k(index, scores, int(ctx.params.get("k", 3)))}


def _keyword_scores(question: str, index: Index, ctx: NodeContext) -> list[float]:
    wanted = set(tokens(question))
    return [float(sum(t in wanted for t in d.tokens)) for d in index.docs]


def _bm25_score(query: list[str], doc: IndexedDoc, index: Index, k1: float, b: float) -> float:
    norm = k1 * (1 - b + b * len(doc.stems) / index.avg_len)
    score = 0.0
    for term in query:
        tf = doc.stem_counts.get(term, 0)
        if tf:
            score += index.stem_idf(term) * tf * (k1 + 1) / (tf + norm)
    return score


def _bm25_scores(question: str, index: Index, ctx: NodeContext) -> list[float]:
    query = sorted(set(content_stems(question)))
    k1 = float(ctx.params.get("k1", 1.2))
    b = float(ctx.params.get("b", 0.75))
    return [_bm25_score(query, d, index, k1, b) for d in index.docs]


def _ngram_scores(question: str, index: Index, ctx: NodeContext) -> list[float]:
    wanted = trigrams(question)
    return [sum(index.trigram_idf(g) for g in sorted(wanted & d.trigrams)) for d in index.docs]


def keyword_retrieve(state: State, ctx: NodeContext) -> dict[str, Any]:
    """Rank documents by how many of their tokens (stopwords included) occur in the question.

    Args:
        state: Needs ``question``.
        ctx: Params ``k`` (documents kept, default 3) and ``latency_ms``.

    Returns:
        ``{"docs": [...]}`` with the top ``k`` documents of positive score.
    """
    return _retrieve(state, ctx, _keyword_scores)


def bm25_retrieve(state: State, ctx: NodeContext) -> dict[str, Any]:
    """Rank documents by Okapi BM25 over stemmed content words.

    Args:
        state: Needs ``question``.
        ctx: Params ``k1`` (default 1.2), ``b`` (default 0.75), ``k`` and ``latency_ms``.

    Returns:
        ``{"docs": [...]}`` with the top ``k`` documents of positive score.
    """
    return _retrieve(state, ctx, _bm25_scores)


def ngram_retrieve(state: State, ctx: NodeContext) -> dict[str, Any]:
    """Rank documents by IDF-weighted overlap of character trigrams of content words.

    Args:
        state: Needs ``question``.
        ctx: Params ``k`` and ``latency_ms``.

    Returns:
        ``{"docs": [...]}`` with the top ``k`` documents of positive score.
    """
    return _retrieve(state, ctx, _ngram_scores)


def _rerank(
    state: State, ctx: NodeContext, score: Callable[[list[str], str], float]
) -> dict[str, Any]:
    simulate_latency(ctx)
    query = sorted(set(content_stems(str(state["question"]))))
    docs = [dict(d) for d in state.get("docs") or []]
    for doc in docs:
        doc["score"] = round(score(query, str(doc["text"])), 4)
    docs.sort(key=lambda d: -float(d["score"]))
    record_usage(ctx, len(query) + sum(len(tokens(str(d["text"]))) for d in docs))
    return {"docs": docs}


def _overlap(query: list[str], text: str) -> float:
    return float(len(set(query) & set(content_stems(text))))


def _proximity(query: list[str], text: str, window: int) -> float:
    stems = [stem(t) for t in tokens(text)]
    wanted = set(query)
    best = 0
    for start in range(max(len(stems) - window + 1, 1)):
        best = max(best, len(wanted & set(stems[start : start + window])))
    return best + 0.1 * len(wanted & set(stems))


def passthrough_rerank(state: State, ctx: NodeContext) -> dict[str, Any]:
    """Keep the retriever's order and scores.

    Args:
        state: Needs ``docs``.
        ctx: Param ``latency_ms``.

    Returns:
        ``{"docs": [...]}``, a copy of the input documents.
    """
    simulate_latency(ctx)
    docs = [dict(d) for d in state.get("docs") or []]
    record_usage(ctx, 0)
    return {"docs": docs}


def overlap_rerank(state: State, ctx: NodeContext) -> dict[str, Any]:
    """Rescore documents by distinct question content stems they contain (stopwords removed).

    Args:
        state: Needs ``question`` and ``docs``.
        ctx: Param ``latency_ms``.

    Returns:
        ``{"docs": [...]}`` re-sorted by the new score; ties keep the retriever's order.
    """
    return _rerank(state, ctx, _overlap)


def proximity_rerank(state: State, ctx: NodeContext) -> dict[str, Any]:
    """Rescore documents by the most question content stems found within one token window.

    Args:
        state: Needs ``question`` and ``docs``.
        ctx: Params ``window`` (tokens, default 12) and ``latency_ms``.

    Returns:
        ``{"docs": [...]}`` re-sorted by the new score; ties keep the retriever's order.
    """
    window = int(ctx.params.get("window", 12))
    return _rerank(state, ctx, lambda q, t: _proximity(q, t, window))


def route_after_rerank(state: State) -> str:
    """Send the run to ``answer`` if some document scored above zero, else to ``fallback``.

    Args:
        state: Needs ``docs``.

    Returns:
        ``"answer"`` or ``"fallback"``.
    """
    docs = state.get("docs") or []
    return "answer" if any(float(d["score"]) > 0 for d in docs) else "fallback"

"""The shipped demo workflow: offline question answering over the Marrowick Island corpus.

Graph::

    retrieve -> rerank -(some doc scored > 0)-> answer   -> END
                       \\-(nothing relevant)---> fallback -> END

State keys: ``question`` (input), ``docs`` (list of ``{"id", "text", "score"}``), ``answer``
(str) and ``evidence`` (the id of the document answered from, or None). Reference it as
``wtb_domain.demo.qa:workflow``.
"""

from __future__ import annotations

from wtb_domain.demo.answering import (
    extractive_answer,
    fallback_answer,
    first_sentence_answer,
    llm_sim_answer,
)
from wtb_domain.demo.data import DATASET_PATH, load_corpus, load_dataset
from wtb_domain.demo.retrieval import (
    bm25_retrieve,
    keyword_retrieve,
    ngram_retrieve,
    overlap_rerank,
    passthrough_rerank,
    proximity_rerank,
    route_after_rerank,
)
from wtb_domain.workflow import END, GraphBuilder, Workflow

__all__ = ["DATASET_PATH", "build_workflow", "load_corpus", "load_dataset", "workflow"]


def _add_retrieve(g: GraphBuilder) -> None:
    g.add_node("retrieve", keyword_retrieve, variant="keyword", params={"k": 3, "latency_ms": 1})
    g.add_variant("retrieve", "keyword_k1", params={"k": 1, "latency_ms": 1})
    g.add_variant(
        "retrieve", "bm25", bm25_retrieve, params={"k": 3, "k1": 1.2, "b": 0.75, "latency_ms": 3}
    )
    g.add_variant("retrieve", "ngram", ngram_retrieve, params={"k": 3, "latency_ms": 8})


def _add_rerank(g: GraphBuilder) -> None:
    g.add_node("rerank", passthrough_rerank, variant="none", params={"latency_ms": 0})
    g.add_variant(
        "rerank", "overlap", overlap_rerank, params={"latency_ms": 2, "usd_per_1k_tokens": 0.001}
    )
    g.add_variant(
        "rerank",
        "proximity",
        proximity_rerank,
        params={"window": 12, "latency_ms": 6, "usd_per_1k_tokens": 0.002},
    )


def _add_answer(g: GraphBuilder) -> None:
    g.add_node(
        "answer",
        extractive_answer,
        variant="extractive",
        params={"latency_ms": 3, "usd_per_1k_tokens": 0.001},
    )
    g.add_variant(
        "answer",
        "first_sentence",
        first_sentence_answer,
        params={"latency_ms": 1, "usd_per_1k_tokens": 0.0},
    )
    g.add_variant(
        "answer",
        "llm_sim",
        llm_sim_answer,
        params={"latency_ms": 12, "usd_per_1k_tokens": 0.03, "completion_tokens": 16},
    )
    g.add_node("fallback", fallback_answer, params={"latency_ms": 0})


def build_workflow() -> Workflow:
    """Build a fresh copy of the demo question-answering workflow.

    Returns:
        The validated workflow with variants on ``retrieve``, ``rerank`` and ``answer``.
    """
    g = GraphBuilder("demo_qa")
    _add_retrieve(g)
    _add_rerank(g)
    _add_answer(g)
    g.add_edge("retrieve", "rerank")
    g.add_conditional_edges(
        "rerank", route_after_rerank, {"answer": "answer", "fallback": "fallback"}
    )
    g.add_edge("answer", END)
    g.add_edge("fallback", END)
    g.set_entry("retrieve")
    return g.build()


workflow = build_workflow()

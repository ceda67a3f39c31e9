"""Answer nodes: pick an answer span from the top-ranked document, or admit ignorance.

Every node reads ``state["question"]`` and ``state["docs"]`` and returns
``{"answer": str, "evidence": doc id or None}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from wtb_domain.demo.metering import record_usage, simulate_latency
from wtb_domain.demo.text import STOPWORDS, content_stems, sentences, tokens
from wtb_domain.workflow import NodeContext, State

UNKNOWN = "I don't know"

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d+")
_PLACE_PREPOSITIONS = frozenset({"at", "in", "near", "on", "of", "from"})
# fmt: off
_NOT_A_PERSON = frozenset({
    "academy", "bridge", "castle", "caves", "church", "cove", "current", "customs", "down",
    "fair", "gazette", "hall", "head", "hoard", "house", "institute", "island", "lake", "light",
    "maidens", "moor", "mount", "museum", "point", "port", "quay", "railway", "river",
    "science", "siege", "sound", "storm"
})
# fmt: on
_ROLES = "architect|engineer|farmer|fiddler|naturalist|oceanographer|poet|printer|shepherd|warlord"
_PLACES = "cove|harbour|headland|island|place|town|village"
_KINDS = (
    ("year", re.compile(r"\b(when|year)\b")),
    ("quantity", re.compile(r"\bhow (many|much|long|deep|tall|high|far|old|big)\b|\bpercent")),
    ("person", re.compile(rf"\b(who|whom|whose)\b|\bwhich ({_ROLES})\b")),
    ("place", re.compile(rf"\bwhere\b|\bwhich ({_PLACES})\b")),
)


@dataclass(frozen=True)
class Candidate:
    """A possible answer span with the word right before it."""

    text: str
    before: str
    is_number: bool


def question_kind(question: str) -> str:
    """Classify a question by the kind of answer it expects.

    Args:
        question: The question text.

    Returns:
        One of ``year``, ``quantity``, ``person``, ``place`` or ``entity``.
    """
    lowered = question.lower()
    found = [(m.start(), kind) for kind, p in _KINDS if (m := p.search(lowered)) is not None]
    return min(found)[1] if found else "entity"


def _clean(word: str) -> str:
    return re.sub(r"'s$", "", word)


def _flush(run: list[str], before: str, asked: set[str], out: list[Candidate]) -> None:
    while run and run[0].lower() in STOPWORDS:
        before = run.pop(0).lower()
    while run and run[-1] == "of":
        run.pop()
    if run and not all(w.lower() in asked for w in run if w != "of"):
        out.append(Candidate(" ".join(run), before, is_number=False))


def candidates(sentence: str, question: str) -> list[Candidate]:
    """Capitalised spans and numbers of ``sentence`` that the question does not already name.

    Args:
        sentence: One sentence of a document.
        question: The question, whose words are excluded.

    Returns:
        Candidates in sentence order.
    """
    asked = set(tokens(question))
    words = [_clean(w) for w in _WORD.findall(sentence)]
    out: list[Candidate] = []
    run: list[str] = []
    before = ""
    for i, word in enumerate(words):
        prev = words[i - 1].lower() if i else ""
        if word[0].isupper() or (word == "of" and run):
            before = before if run else prev
            run.append(word)
            continue
        _flush(run, before, asked, out)
        run = []
        if word.isdigit() and word not in asked:
            out.append(Candidate(word, prev, is_number=True))
    _flush(run, before, asked, out)
    return out


def _pick_number(found: list[Candidate], kind: str) -> str | None:
    numbers = [c for c in found if c.is_number]
    dated = [c for c in numbers if c.before in {"in", "since"}]
    if kind == "year":
        years = [c for c in numbers if len(c.text) == 4]
        preferred = [c for c in dated if c in years] or years
    else:
        preferred = [c for c in numbers if c not in dated]
    return preferred[0].text if preferred else None


def _pick_name(found: list[Candidate], kind: str) -> str | None:
    names = [c for c in found if not c.is_number]
    if kind == "person":
        names = [c for c in names if not _NOT_A_PERSON & set(tokens(c.text))]
        names = [c for c in names if " " in c.text] or names
    elif kind == "place":
        names = [c for c in names if c.before in _PLACE_PREPOSITIONS]
    return names[-1].text if names else None


def pick_span(found: list[Candidate], kind: str) -> str | None:
    """Choose the candidate that best fits the question kind.

    Args:
        found: Candidates of one sentence.
        kind: The result of :func:`question_kind`.

    Returns:
        The span, or None if no candidate fits.
    """
    if kind in ("year", "quantity"):
        return _pick_number(found, kind)
    return _pick_name(found, kind) or (_pick_number(found, kind) if kind == "entity" else None)


def extract_answer(question: str, text: str) -> str:
    """Find the sentence of ``text`` best matching the question and extract a typed span.

    Only sentences holding a span of the question's kind compete; ties go to the earlier one.

    Args:
        question: The question.
        text: The document to answer from.

    Returns:
        The extracted span, or the first sentence when no sentence has a span of the right kind.
    """
    kind = question_kind(question)
    query = set(content_stems(question))
    best: tuple[int, str] | None = None
    for sentence in sentences(text):
        span = pick_span(candidates(sentence, question), kind)
        overlap = len(query & set(content_stems(sentence)))
        if span is not None and (best is None or overlap > best[0]):
            best = (overlap, span)
    return best[1] if best else next(iter(sentences(text)), "")


def _top_doc(state: State) -> dict[str, Any] | None:
    docs = state.get("docs") or []
    return dict(docs[0]) if docs else None


def first_sentence_answer(state: State, ctx: NodeContext) -> dict[str, Any]:
    """Answer with the first sentence of the top document (a weak baseline).

    Args:
        state: Needs ``docs``.
        ctx: Params ``latency_ms`` and ``usd_per_1k_tokens``.

    Returns:
        ``{"answer", "evidence"}``.
    """
    simulate_latency(ctx)
    top = _top_doc(state)
    if top is None:
        return {"answer": UNKNOWN, "evidence": None}
    answer = next(iter(sentences(str(top["text"]))), "")
    record_usage(ctx, len(tokens(answer)))
    return {"answer": answer, "evidence": top["id"]}


def extractive_answer(state: State, ctx: NodeContext) -> dict[str, Any]:
    """Answer with a span of the question's kind from the best sentence of the top document.

    Args:
        state: Needs ``question`` and ``docs``.
        ctx: Params ``latency_ms`` and ``usd_per_1k_tokens``.

    Returns:
        ``{"answer", "evidence"}``.
    """
    simulate_latency(ctx)
    top = _top_doc(state)
    if top is None:
        return {"answer": UNKNOWN, "evidence": None}
    question = str(state["question"])
    record_usage(ctx, len(tokens(question)) + len(tokens(str(top["text"]))))
    return {"answer": extract_answer(question, str(top["text"])), "evidence": top["id"]}


def llm_sim_answer(state: State, ctx: NodeContext) -> dict[str, Any]:
    """Simulate an LLM call: the extractive answer, billed for a prompt holding every document.

    Args:
        state: Needs ``question`` and ``docs``.
        ctx: Params ``latency_ms``, ``usd_per_1k_tokens`` and ``completion_tokens``.

    Returns:
        ``{"answer", "evidence"}``.
    """
    simulate_latency(ctx)
    top = _top_doc(state)
    if top is None:
        return {"answer": UNKNOWN, "evidence": None}
    question = str(state["question"])
    prompt = len(tokens(question)) + sum(len(tokens(str(d["text"]))) for d in state["docs"])
    record_usage(ctx, prompt + int(ctx.params.get("completion_tokens", 16)))
    return {"answer": extract_answer(question, str(top["text"])), "evidence": top["id"]}


def fallback_answer(state: State, ctx: NodeContext) -> dict[str, Any]:
    """Admit that no retrieved document supports an answer.

    Args:
        state: Unused.
        ctx: Param ``latency_ms``.

    Returns:
        ``{"answer": "I don't know", "evidence": None}``.
    """
    simulate_latency(ctx)
    record_usage(ctx, 0)
    return {"answer": UNKNOWN, "evidence": None}

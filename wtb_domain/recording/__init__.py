"""Recorded LLM and tool calls, and the node result cache.

Nodes call models and tools through their ``ctx``::

    reply = ctx.llm(client.chat.completions.create, model="m", messages=[...])   # sync node
    reply = await ctx.allm(aclient.chat.completions.create, model="m", messages=[...])
    hits = ctx.tool("search", search, {"query": "..."})         # await ctx.atool(...) if async

or through a wrapped OpenAI client (:mod:`wtb_domain.recording.openai`), unchanged code.
Every request/response is stored with the node's checkpoint (``record`` mode, the default),
served back in ``replay`` mode, or both in ``replay-or-live``; ``live`` stores nothing.
The mode is an execution label (``llm``) set by the batch spec's ``llm:`` field or
``--llm-mode``. See :mod:`wtb_domain.recording.cache` for the node result cache.
"""

from wtb_domain.recording.model import (
    CACHE_LABEL,
    LLM_LABEL,
    CacheEntry,
    CallMode,
    CallRecord,
    CallSettings,
    llm_label,
)

__all__ = [
    "CACHE_LABEL",
    "LLM_LABEL",
    "CacheEntry",
    "CallMode",
    "CallRecord",
    "CallSettings",
    "llm_label",
]

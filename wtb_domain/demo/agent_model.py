"""The demo agent's chat model and tool: recorded responses, a search over the shipped corpus.

:class:`RecordedChatModel` is a LangChain chat model that answers from
``agent_responses.json`` (responses per prompt variant x question x turn), so the demo runs
offline and deterministically. A conversation it has no recording for is an error naming the
prompt, the question and the turn (never a made-up answer).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, messages_from_dict
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool

from wtb_domain.demo.retrieval import bm25_retrieve
from wtb_domain.errors import WtbError

RESPONSES_PATH = Path(__file__).resolve().parent / "agent_responses.json"


class ResponseNotRecorded(WtbError):
    """The recorded model was asked something it has no recording for."""


@cache
def recordings() -> dict[str, Any]:
    """``{"prompts": {variant: text}, "responses": {variant: {question: [messages]}}}``."""
    data: dict[str, Any] = json.loads(RESPONSES_PATH.read_text(encoding="utf-8"))
    return data


def prompt(variant: str) -> str:
    """The system prompt text of a recorded prompt variant."""
    return str(recordings()["prompts"][variant])


class RecordedChatModel(BaseChatModel):
    """Replays recorded replies: the system prompt picks the variant, the first human
    message the question, the number of AI replies since then the turn."""

    @property
    def _llm_type(self) -> str:
        return "wtb-recorded"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = recorded_reply(messages)
        return ChatResult(generations=[ChatGeneration(message=reply)])


def recorded_reply(messages: Sequence[BaseMessage]) -> AIMessage:
    data = recordings()
    system = next((m.content for m in messages if m.type == "system"), None)
    variant = next((v for v, text in data["prompts"].items() if text == system), None)
    humans = [i for i, m in enumerate(messages) if m.type == "human"]
    if variant is None or not humans:
        raise ResponseNotRecorded(
            f"no recorded responses for system prompt {str(system)[:60]!r}; recorded prompts: "
            f"{', '.join(data['prompts'])}"
        )
    question = str(messages[humans[0]].content)
    turn = sum(1 for m in messages[humans[0] :] if m.type == "ai")
    replies = data["responses"][variant].get(question)
    if replies is None or turn >= len(replies):
        raise ResponseNotRecorded(
            f"no recorded response for prompt {variant!r}, question {question[:60]!r}, "
            f"turn {turn}; record it in {RESPONSES_PATH.name}"
        )
    (message,) = messages_from_dict([replies[turn]])
    if not isinstance(message, AIMessage):
        raise ResponseNotRecorded(
            f"recorded reply {turn} to {question[:60]!r} ({variant!r}) is a {message.type} "
            "message, not an AI message; fix the recording"
        )
    return message


@dataclass
class _SearchCtx:
    params: Mapping[str, Any] = field(default_factory=lambda: {"k": 1, "latency_ms": 0})

    def record(self, name: str, value: float) -> None:
        """The tool's usage is not metered."""


@tool
def search_island(query: str) -> str:
    """Search the Marrowick Island records; returns the best matching passage."""
    docs = bm25_retrieve({"question": query}, _SearchCtx())["docs"]  # type: ignore[arg-type]
    return str(docs[0]["text"]) if docs else "no record found"

"""Record the official OpenAI client's chat completions with no change to the node's code.

::

    from openai import OpenAI
    from wtb_domain.recording.openai import wrap

    client = wrap(OpenAI(base_url=..., api_key=...))   # or wrap(AsyncOpenAI(...))

    def answer(state, ctx):
        reply = client.chat.completions.create(model="m", messages=[...])  # recorded
        return {"answer": reply.choices[0].message.content}

Inside a node run by WTB, ``chat.completions.create`` goes through the node's recorder
(record / replay per the run's mode) and returns a ``ChatCompletion`` built from the JSON
that is stored, in every mode alike. Outside a node run it is the client's own call.
Everything else on the client is the client's own. Headers and the API key are never stored.
"""

from __future__ import annotations

from typing import Any

from wtb_domain.recording.recorder import active


def _completion(data: Any) -> Any:
    from openai.types.chat import ChatCompletion

    return ChatCompletion.model_validate(data)


class _Completions:
    def __init__(self, inner: Any, is_async: bool) -> None:
        self._inner = inner
        self._async = is_async
        if is_async:
            self.create = self._acreate
        else:
            self.create = self._create

    def _create(self, **request: Any) -> Any:
        recorder = active()
        if recorder is None:
            return self._inner.create(**request)
        return _completion(recorder.llm(self._inner.create, **request))

    async def _acreate(self, **request: Any) -> Any:
        recorder = active()
        if recorder is None:
            return await self._inner.create(**request)
        return _completion(await recorder.allm(self._inner.create, **request))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Chat:
    def __init__(self, inner: Any, is_async: bool) -> None:
        self._inner = inner
        self.completions = _Completions(inner.completions, is_async)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class RecordedClient:
    """An OpenAI / AsyncOpenAI client whose ``chat.completions.create`` is recorded."""

    def __init__(self, client: Any) -> None:
        self._client = client
        is_async = type(client).__name__.startswith("Async")
        self.chat = _Chat(client.chat, is_async)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def wrap(client: Any) -> Any:
    """``client`` (``openai.OpenAI`` or ``openai.AsyncOpenAI``) with recorded chat completions."""
    return RecordedClient(client)

"""LangGraph integration (``pip install -e ".[langgraph]"``).

:func:`from_langgraph` turns a ``StateGraph`` into a WTB Workflow (WTB runs it);
``WtbCheckpointSaver`` is a LangGraph checkpointer over WTB's stores (LangGraph runs it).

LangGraph is imported only when these names are used, so ``import wtb_domain`` works
without it.

Variant parameters reach a LangGraph node through its ``RunnableConfig``: a node that takes
``config: RunnableConfig`` reads ``config["configurable"]["prompt"]`` (the same keys a plain
LangGraph run gets from ``graph.invoke(..., config={"configurable": {...}})``), and
``config["configurable"]["wtb_ctx"]`` is WTB's node context (``ctx.record("tokens", n)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wtb_domain.langgraph.spec import VariantSpec, require_langgraph

if TYPE_CHECKING:
    from collections.abc import Mapping

    from wtb_domain.workflow import Workflow

__all__ = [
    "VariantSpec",
    "WtbCheckpointSaver",
    "from_langgraph",
    "to_langgraph_state",
    "to_wtb_state",
]


def from_langgraph(
    state_graph: Any,
    *,
    name: str | None = None,
    variants: Mapping[str, Mapping[str, VariantSpec]] | None = None,
    max_steps: int | None = None,
) -> Workflow:
    """The WTB workflow of an uncompiled LangGraph ``StateGraph``.

    Args:
        state_graph: A ``langgraph.graph.StateGraph`` (not compiled).
        name: The workflow's name (default: the state schema's class name).
        variants: ``{node: {variant_name: VariantSpec(fn=..., params={...})}}``; a variant
            named ``default`` replaces the node's own callable or parameters.
        max_steps: Node runs allowed per execution (default 25, LangGraph's recursion limit).

    Raises:
        WorkflowError: LangGraph is not installed, the graph uses a feature WTB does not run
            (Send, Command, subgraphs, joins and fan-out, managed values), naming the node.
    """
    require_langgraph()
    from wtb_domain.langgraph.convert import convert

    return convert(state_graph, name=name, variants=variants or {}, max_steps=max_steps)


def to_langgraph_state(state_graph: Any, state: Mapping[str, Any]) -> dict[str, Any]:
    """A WTB (JSON) state as LangGraph values: message keys become LangChain messages."""
    require_langgraph()
    from wtb_domain.langgraph.messages import StateCodec

    return StateCodec.for_graph(state_graph).decode(state)


def to_wtb_state(state_graph: Any, state: Mapping[str, Any]) -> dict[str, Any]:
    """A LangGraph state (or input) as WTB's JSON: message keys become ``messages_to_dict``
    dicts, so ``controller.run(workflow, to_wtb_state(graph, {"messages": [msg]}))`` works."""
    require_langgraph()
    from wtb_domain.langgraph.messages import StateCodec

    return StateCodec.for_graph(state_graph).encode(state)


def __getattr__(name: str) -> Any:
    if name == "WtbCheckpointSaver":
        from wtb_domain.langgraph.saver import WtbCheckpointSaver

        return WtbCheckpointSaver
    raise AttributeError(name)

"""``WtbCheckpointSaver``: LangGraph's checkpointer interface over WTB's SQL store.

Each thread + ``checkpoint_ns`` is a WTB execution and each LangGraph checkpoint a WTB
checkpoint, so ``wtb history/show/diff/fork`` work on threads LangGraph ran. Channel values are
content-addressed in ``wtb_state_blobs``: a value is stored once per distinct content, so a
large channel that does not change costs one row however many steps reference it.

The async methods run the sync ones in a worker thread (the store is a sync SQLAlchemy engine).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import random
import secrets
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.serde.base import SerializerProtocol

from wtb_domain.adapters.sql.database import Database, database_for
from wtb_domain.bootstrap import App
from wtb_domain.errors import NotFoundError, SpecError
from wtb_domain.langgraph import codec, store
from wtb_domain.model import Source

_CACHE_LIMIT = 100_000


class WtbCheckpointSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer storing into a WTB database (SQLite or PostgreSQL).

    ``target``: a WTB database URL, an :class:`App` from ``sql_app`` or a ``Database``
    (default: ``WTB_DATABASE_URL`` or ``./.wtb/wtb.db``). The schema comes from WTB's
    migrations, applied on first use.
    """

    def __init__(
        self,
        target: str | App | Database | None = None,
        *,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        if isinstance(target, App):
            if target.database is None:
                raise SpecError(
                    "WtbCheckpointSaver: the App has no database (a memory App); "
                    "pass a SQLite or PostgreSQL URL or an App from sql_app(url)"
                )
            target = target.database
        self.database = target if isinstance(target, Database) else database_for(target)
        self._hashes: dict[tuple[str, str, str], str] = {}
        self._seen: dict[str, tuple[str, dict[str, Any]]] = {}

    # -- reads ---------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "") or ""
        with self.database.engine.connect() as conn:
            rows = store.find(
                conn,
                thread_id=thread_id,
                checkpoint_ns=ns,
                checkpoint_id=get_checkpoint_id(config),
                limit=1,
            )
            return self._tuples(conn, rows)[0] if rows else None

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        conf = config["configurable"] if config else {}
        thread_id = conf.get("thread_id")
        with self.database.engine.connect() as conn:
            rows = store.find(
                conn,
                thread_id=str(thread_id) if thread_id is not None else None,
                checkpoint_ns=conf.get("checkpoint_ns"),
                checkpoint_id=get_checkpoint_id(config) if config else None,
                before=get_checkpoint_id(before) if before else None,
                limit=None if filter else limit,
            )
            if filter:
                rows = [r for r in rows if _matches(self._decode(r.metadata), filter)]
                rows = rows if limit is None else rows[: max(limit, 0)]
            tuples = self._tuples(conn, rows)
        yield from tuples

    def _tuples(self, conn: Any, rows: Sequence[store.Stored]) -> builtins.list[CheckpointTuple]:
        loaded = store.load_values(conn, (h for r in rows for h in r.manifest.values()))
        out = []
        for r in rows:
            checkpoint = self._decode(r.checkpoint)
            checkpoint["channel_values"] = {
                k: codec.unwrap(loaded[h], self.serde) for k, h in r.manifest.items()
            }
            pending = [
                (w.task_id, w.channel, self.serde.loads_typed((w.type, bytes(w.value))))
                for w in store.writes(conn, r.thread_id, r.checkpoint_ns, r.checkpoint_id)
            ]
            out.append(
                CheckpointTuple(
                    config=_config(r.thread_id, r.checkpoint_ns, r.checkpoint_id),
                    checkpoint=checkpoint,
                    metadata=self._decode(r.metadata),
                    parent_config=(
                        _config(r.thread_id, r.checkpoint_ns, r.parent_checkpoint_id)
                        if r.parent_checkpoint_id
                        else None
                    ),
                    pending_writes=pending,
                )
            )
        return out

    # -- writes --------------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._put(config, checkpoint, metadata, new_versions)

    def _put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        fork_of: tuple[str, str] | None = None,
    ) -> RunnableConfig:
        conf = config["configurable"]
        thread_id = store.check_key("thread_id", str(conf["thread_id"]), 255)
        ns = store.check_key("checkpoint_ns", conf.get("checkpoint_ns", "") or "", 255)
        cp_id = store.check_key("checkpoint_id", str(checkpoint["id"]), 64)
        parent_id = conf.get("checkpoint_id")
        exec_id = store.execution_id(thread_id, ns)
        c: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = c.pop("channel_values", {}) or {}
        versions: Mapping[str, Any] = c.get("channel_versions", {})
        manifest: dict[str, str] = {}
        blobs: dict[str, str] = {}
        unknown: list[str] = []
        for channel, version in versions.items():
            key = (exec_id, channel, str(version))
            if channel not in new_versions and key in self._hashes:
                manifest[channel] = self._hashes[key]
            elif channel in values:
                digest, text = codec.encode_hashed(values[channel], self.serde)
                manifest[channel] = digest
                blobs[digest] = text
            elif channel not in new_versions:
                unknown.append(channel)
        md = get_checkpoint_metadata(config, metadata)
        step = md.get("step")
        seen: dict[str, Any] = c.get("versions_seen", {}) or {}
        node = self._nodes(exec_id, str(parent_id) if parent_id else None, seen)
        with self.database.engine.begin() as conn:
            if unknown and parent_id:
                self._from_parent(conn, thread_id, ns, str(parent_id), unknown, versions, manifest)
            store.save(
                conn,
                store.NewCheckpoint(
                    thread_id=thread_id,
                    checkpoint_ns=ns,
                    checkpoint_id=cp_id,
                    parent_checkpoint_id=str(parent_id) if parent_id else None,
                    checkpoint=self._encode(c),
                    metadata=self._encode(md),
                    manifest=manifest,
                    blobs=blobs,
                    step=step if isinstance(step, int) else 0,
                    source=store.SOURCES.get(str(md.get("source")), Source.NODE),
                    fork_of=fork_of,
                    node=node,
                ),
            )
        self._seen[exec_id] = (cp_id, seen)
        if len(self._hashes) > _CACHE_LIMIT:
            self._hashes.clear()
            self._seen.clear()
        for channel, digest in manifest.items():
            self._hashes[(exec_id, channel, str(versions[channel]))] = digest
        return _config(thread_id, ns, cp_id)

    def _nodes(self, exec_id: str, parent_id: str | None, seen: Mapping[str, Any]) -> str | None:
        """The nodes that ran since the parent: those whose ``versions_seen`` changed (known
        when this saver wrote the parent; else None)."""
        last = self._seen.get(exec_id)
        if last is None or parent_id is None or last[0] != parent_id:
            return None
        ran = sorted(k for k, v in seen.items() if v != last[1].get(k) and not k.startswith("__"))
        return ",".join(ran) or None

    def _from_parent(
        self,
        conn: Any,
        thread_id: str,
        ns: str,
        parent_id: str,
        channels: Sequence[str],
        versions: Mapping[str, Any],
        manifest: dict[str, str],
    ) -> None:
        """Hashes of unchanged channels whose values the checkpoint did not carry: the
        parent's, when it holds the same version."""
        rows = store.find(conn, thread_id=thread_id, checkpoint_ns=ns, checkpoint_id=parent_id)
        if not rows:
            return
        parent = rows[0]
        parent_versions = self._decode(parent.checkpoint).get("channel_versions", {})
        for channel in channels:
            same = str(parent_versions.get(channel)) == str(versions[channel])
            if same and channel in parent.manifest:
                manifest[channel] = parent.manifest[channel]

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        conf = config["configurable"]
        base = {
            "thread_id": store.check_key("thread_id", str(conf["thread_id"]), 255),
            "checkpoint_ns": conf.get("checkpoint_ns", "") or "",
            "checkpoint_id": str(conf["checkpoint_id"]),
            "task_id": store.check_key("task_id", task_id, 255),
            "task_path": task_path,
        }
        rows = []
        for idx, (channel, value) in enumerate(writes):
            kind, data = self.serde.dumps_typed(value)
            rows.append(
                {
                    **base,
                    "idx": WRITES_IDX_MAP.get(channel, idx),
                    "channel": channel,
                    "type": kind,
                    "value": data,
                }
            )
        replace = all(w[0] in WRITES_IDX_MAP for w in writes)
        with self.database.engine.begin() as conn:
            store.put_writes(conn, rows, replace=replace)

    def delete_thread(self, thread_id: str) -> None:
        with self.database.engine.begin() as conn:
            store.delete_thread(conn, str(thread_id))
        self._hashes.clear()
        self._seen.clear()

    def get_next_version(self, current: str | None, channel: None) -> str:
        return next_version(current)

    # -- async ---------------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        tuples = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for t in tuples:
            yield t

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    # -- WTB -----------------------------------------------------------------------------

    def fork(
        self, wtb_checkpoint_id: str, patch: Mapping[str, Any] | None = None
    ) -> RunnableConfig:
        """A new thread (a new WTB execution) starting at a copy of a LangGraph checkpoint,
        with ``patch``'s channels replaced; returns the config LangGraph continues it with
        (``graph.invoke(None, config)``)."""
        with self.database.engine.connect() as conn:
            rows = store.find(conn, wtb_id=wtb_checkpoint_id)
            if not rows:
                raise NotFoundError(
                    f"checkpoint {wtb_checkpoint_id!r} is not a LangGraph checkpoint; "
                    "pick one from `wtb history` of a LangGraph thread"
                )
            source = self._tuples(conn, rows)[0]
        src = rows[0]
        checkpoint: dict[str, Any] = dict(source.checkpoint)
        values: dict[str, Any] = dict(checkpoint["channel_values"])
        versions: dict[str, Any] = dict(checkpoint["channel_versions"])
        for channel, value in (patch or {}).items():
            values[channel] = value
            versions[channel] = self.get_next_version(versions.get(channel), None)
        checkpoint.update(
            id=str(uuid6(clock_seq=-1)), channel_values=values, channel_versions=versions
        )
        thread_id = f"{src.thread_id[:200]}-fork-{secrets.token_hex(4)}"
        metadata: dict[str, Any] = {
            **source.metadata,
            "source": "fork",
            "forked_from": dict(source.config["configurable"]),
            "patched": sorted(patch or {}),
        }
        config = _config(thread_id, src.checkpoint_ns, None)
        return self._put(
            config,
            Checkpoint(**checkpoint),  # type: ignore[typeddict-item]
            metadata,  # type: ignore[arg-type]
            versions,
            fork_of=(src.execution_id, src.wtb_checkpoint_id),
        )

    # -- encoding ------------------------------------------------------------------------

    def _encode(self, value: Any) -> Any:
        """A JSON column value: plain JSON as is, anything else a serde envelope (also text
        with NUL characters, which PostgreSQL's JSONB refuses)."""
        text = codec.encode(value, self.serde)
        if "\\u0000" in text:
            text = codec.envelope(value, self.serde)
        return json.loads(text)

    def _decode(self, value: Any) -> Any:
        return codec.unwrap(value, self.serde)


def _config(thread_id: str, ns: str, checkpoint_id: str | None) -> RunnableConfig:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def _matches(metadata: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    return all(metadata.get(k) == v for k, v in query.items())


def next_version(current: str | int | float | None) -> str:
    """LangGraph's sortable string versions (``NNN...N.random``), as its own savers use."""
    if current is None:
        number = 0
    elif isinstance(current, int | float):
        number = int(current)
    else:
        number = int(str(current).split(".")[0])
    return f"{number + 1:032}.{random.random():016}"  # noqa: S311 - a tie-breaker, not a secret

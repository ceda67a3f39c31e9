"""``wtb``: run workflows with checkpoints, time-travel through them, batch-test variants."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from wtb_cli import render
from wtb_cli.calls_opts import (
    LlmModeOpt,
    LlmRecordingsOpt,
    LlmSourceOpt,
    NoCacheOpt,
    call_labels,
)
from wtb_cli.common import (
    app_for,
    check_database_url,
    check_variants,
    check_workflow_ref,
    console,
    fail,
    parse_json,
    parse_pairs,
    user_errors,
)
from wtb_domain import SpecError
from wtb_domain.state import max_state_bytes

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

    from wtb_domain.adapters.sql.database import Database

app = typer.Typer(no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)
db_app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic migrations).")
app.add_typer(db_app, name="db")


def metrics_port(value: str) -> int:
    """``WTB_METRICS_PORT`` as a TCP port (1-65535).

    Raises:
        SpecError: Naming the variable.
    """
    text = value.strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise SpecError(
            f"WTB_METRICS_PORT: expected a TCP port between 1 and 65535, got {value[:40]!r}; "
            "set it to e.g. 9464 or unset it"
        )
    return int(text)


@app.callback()
@user_errors
def main() -> None:
    """Serve Prometheus metrics on WTB_METRICS_PORT while a command runs, when it is set."""
    max_state_bytes()  # a bad WTB_MAX_STATE_BYTES is one line before any work
    port = os.environ.get("WTB_METRICS_PORT")
    if port:
        from prometheus_client import start_http_server

        from wtb_domain.metrics import exposed_registry

        number = metrics_port(port)
        addr = os.environ.get("WTB_METRICS_ADDR", "127.0.0.1")
        try:  # the process's wtb_* families, at zero until recorded
            start_http_server(number, addr=addr, registry=exposed_registry())
        except OSError as exc:
            raise SpecError(
                f"WTB_METRICS_PORT: cannot serve metrics on {addr}:{number} ({exc.strerror}); "
                "choose a free port or unset it"
            ) from None


DbOpt = Annotated[
    str | None,
    typer.Option("--db", envvar="WTB_DATABASE_URL", help="Database URL (default ./.wtb/wtb.db)."),
]
WorkflowOpt = Annotated[
    str | None,
    typer.Option("--workflow", help="Workflow ref module:attr (default: the one it started with)."),
]


def _show(database_url: str | None, execution_id: str) -> None:
    controller = app_for(database_url).controller
    render.execution(controller.get(execution_id), controller.state(execution_id))


@app.command()
@user_errors
def run(
    workflow: Annotated[str, typer.Argument(help="Workflow reference, package.module:attr.")],
    input: Annotated[str, typer.Option("--input", "-i", help="Input state: JSON or @file.")],
    variant: Annotated[list[str] | None, typer.Option(help="NODE=VARIANT (repeatable).")] = None,
    break_before: Annotated[list[str] | None, typer.Option(help="Pause before NODE.")] = None,
    break_after: Annotated[list[str] | None, typer.Option(help="Pause after NODE.")] = None,
    llm_mode: LlmModeOpt = None,
    llm_source_batch: LlmSourceOpt = None,
    llm_recordings: LlmRecordingsOpt = None,
    no_cache: NoCacheOpt = False,
    db: DbOpt = None,
) -> None:
    """Run a workflow from an input state, with a checkpoint after every node."""
    check_workflow_ref(workflow, "workflow")
    state = parse_json(input, "--input")
    if not isinstance(state, dict):
        raise SpecError('--input: must be a JSON object, e.g. {"question": "..."}')
    variants = parse_pairs(variant, "--variant")  # every option is checked before the store
    labels = call_labels(llm_mode, llm_source_batch, no_cache, llm_recordings)
    from wtb_domain.workflow.loading import load_workflow

    wf = load_workflow(workflow)
    check_variants(wf, variants, "--variant")
    controller = app_for(db).controller
    e = controller.run(
        wf,
        state,
        variants=variants,
        break_before=break_before or [],
        break_after=break_after or [],
        labels=labels,
    )
    render.execution(e, controller.state(e.id))
    if e.status.value == "failed":
        raise typer.Exit(1)


@app.command()
@user_errors
def resume(execution_id: str, workflow: WorkflowOpt = None, db: DbOpt = None) -> None:
    """Continue a paused execution (also from another process or machine)."""
    check_workflow_ref(workflow, "--workflow")
    e = app_for(db).controller.resume(execution_id, workflow)
    _show(db, e.id)


@app.command()
@user_errors
def step(execution_id: str, workflow: WorkflowOpt = None, db: DbOpt = None) -> None:
    """Run one node of a paused execution and pause again."""
    check_workflow_ref(workflow, "--workflow")
    e = app_for(db).controller.step(execution_id, workflow)
    _show(db, e.id)


@app.command()
@user_errors
def history(execution_id: str, db: DbOpt = None) -> None:
    """List an execution's checkpoints."""
    controller = app_for(db).controller
    e = controller.get(execution_id)
    render.history(controller.history(execution_id), e.head_checkpoint_id)


@app.command()
@user_errors
def show(checkpoint_id: str, db: DbOpt = None) -> None:
    """Show one checkpoint with its full state."""
    render.checkpoint(app_for(db).controller.checkpoint(checkpoint_id))


@app.command()
@user_errors
def status(execution_id: str, db: DbOpt = None) -> None:
    """Show an execution's status and current state."""
    _show(db, execution_id)


@app.command()
@user_errors
def rollback(checkpoint_id: str, db: DbOpt = None) -> None:
    """Move an execution's head back to a checkpoint (later ones stay in history)."""
    e = app_for(db).controller.rollback(checkpoint_id)
    _show(db, e.id)


@app.command()
@user_errors
def fork(
    checkpoint_id: str,
    set_state: Annotated[
        str | None, typer.Option("--set", help="JSON object of state keys to replace.")
    ] = None,
    variant: Annotated[list[str] | None, typer.Option(help="NODE=VARIANT (repeatable).")] = None,
    no_run: Annotated[bool, typer.Option("--no-run", help="Create the fork paused.")] = False,
    workflow: WorkflowOpt = None,
    llm_mode: LlmModeOpt = None,
    llm_source_batch: LlmSourceOpt = None,
    llm_recordings: LlmRecordingsOpt = None,
    no_cache: NoCacheOpt = False,
    db: DbOpt = None,
) -> None:
    """Start a new execution from a checkpoint, optionally with edited state or variants."""
    check_workflow_ref(workflow, "--workflow")
    patch = parse_json(set_state, "--set")
    if patch is not None and not isinstance(patch, dict):
        raise SpecError('--set: must be a JSON object, e.g. {"question": "..."}')
    variants = parse_pairs(variant, "--variant")  # every option is checked before the store
    labels = call_labels(llm_mode, llm_source_batch, no_cache, llm_recordings)
    if _fork_langgraph(checkpoint_id, patch, bool(variant) or workflow is not None, db):
        return
    e = app_for(db).controller.fork(
        checkpoint_id, patch, variants, workflow=workflow, run=not no_run, more_labels=labels
    )
    _show(db, e.id)


def _fork_langgraph(
    checkpoint_id: str, patch: dict[str, object] | None, wtb_options: bool, db: str | None
) -> bool:
    """Fork a checkpoint of a LangGraph thread into a new thread; False if it is not one."""
    from wtb_domain.langgraph.store import LABEL, execution_id

    app = app_for(db)
    if LABEL not in app.controller.checkpoint(checkpoint_id).metadata:
        return False
    if wtb_options:
        raise SpecError(
            "--variant/--workflow: a LangGraph thread has no WTB workflow; fork it with "
            "--set only, then continue the new thread in LangGraph"
        )
    try:
        from wtb_domain.langgraph.saver import WtbCheckpointSaver
    except ImportError:
        raise SpecError(
            'checkpoint of a LangGraph thread: install the extra (pip install -e ".[langgraph]")'
        ) from None
    config = WtbCheckpointSaver(app).fork(checkpoint_id, patch)
    conf = config["configurable"]
    _show(db, execution_id(conf["thread_id"], conf["checkpoint_ns"]))
    typer.echo(f"continue it in LangGraph: graph.invoke(None, {json.dumps(config)})")
    return True


@app.command()
@user_errors
def replay(
    checkpoint_id: str,
    node: str,
    variant: str,
    workflow: WorkflowOpt = None,
    llm_mode: LlmModeOpt = None,
    llm_source_batch: LlmSourceOpt = None,
    llm_recordings: LlmRecordingsOpt = None,
    no_cache: NoCacheOpt = False,
    db: DbOpt = None,
) -> None:
    """Rerun NODE with VARIANT from a checkpoint (a new, forked execution)."""
    check_workflow_ref(workflow, "--workflow")
    more = call_labels(llm_mode, llm_source_batch, no_cache, llm_recordings)
    e = app_for(db).controller.replay(
        checkpoint_id, node, variant, workflow=workflow, more_labels=more
    )
    _show(db, e.id)


@app.command()
@user_errors
def diff(checkpoint_a: str, checkpoint_b: str, db: DbOpt = None) -> None:
    """Show what changed in the state from checkpoint A to checkpoint B."""
    render.diff(app_for(db).controller.diff(checkpoint_a, checkpoint_b))


@db_app.command("upgrade")
@user_errors
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head", db: DbOpt = None
) -> None:
    """Apply migrations (also done automatically on first use). Never downgrades."""
    from alembic.util import CommandError

    from wtb_domain.adapters.sql.database import Database

    check_database_url(db)
    if not revision.strip():
        raise SpecError("revision: empty; use head or a revision id such as 0001")
    database = Database(db, migrate=False)
    current, target = _revisions(database, revision)
    backwards = revision.strip() == "base" or revision.strip().startswith("-")
    newer = current is not None and target is not None and current != target
    if current is not None and (backwards or (newer and target in _ancestors(current))):
        raise fail(
            f"database {database.safe_url} is at revision {current}, newer than {revision}; "
            "`wtb db upgrade` does not downgrade, nothing was changed"
        )
    try:
        database.upgrade(revision)
    except CommandError as exc:
        raise SpecError(
            f"revision: {exc}; use head or one of {', '.join(_known_revisions())}"
        ) from None
    after, _ = _revisions(database, "head")
    reached = after or "base (no migration applied)"
    console.print(f"database {escape(database.safe_url)} is at {escape(reached)}")


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    from wtb_domain.adapters.sql.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config())


def _known_revisions() -> list[str]:
    return sorted(r.revision for r in _script().walk_revisions())


def _ancestors(revision: str) -> set[str]:
    return {r.revision for r in _script().walk_revisions(base="base", head=revision)}


def _revisions(database: Database, revision: str) -> tuple[str | None, str | None]:
    """The database's current revision and ``revision`` resolved (``None`` if unknown)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.util import CommandError
    from sqlalchemy.exc import OperationalError

    from wtb_domain.errors import StoreError

    try:
        with database.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise StoreError(f"cannot reach database {database.safe_url}: {exc.orig}") from None
    try:
        found = _script().get_revision(revision)
    except CommandError:
        return current, None
    return current, found.revision if found is not None else None


from wtb_cli import batch as _batch  # noqa: E402

app.add_typer(_batch.batch_app, name="batch")
app.command("matrix")(user_errors(_batch.matrix_command))
app.command("parity")(user_errors(_batch.parity_command))
app.command("demo")(user_errors(_batch.demo_command))

from wtb_cli.prefect_cmd import prefect_app  # noqa: E402

app.add_typer(prefect_app, name="prefect")

from wtb_cli import regress as _regress  # noqa: E402

app.add_typer(_regress.baseline_app, name="baseline")
app.command("regress")(user_errors(_regress.regress_command))

from wtb_cli import audit as _audit  # noqa: E402

app.command("audit")(user_errors(_audit.audit_command))

from wtb_cli.doctor import doctor_command  # noqa: E402

app.command("doctor")(user_errors(doctor_command))

from wtb_cli.metrics_cmd import metrics_app  # noqa: E402

app.add_typer(metrics_app, name="metrics")

from wtb_cli.recordings_cmd import recordings_app  # noqa: E402

app.add_typer(recordings_app, name="recordings")


if __name__ == "__main__":
    app()

"""SQLAlchemy repositories: Core statements on the ORM tables, on the unit of work's connection.

One module per concept: :mod:`~.rows` (row <-> model converters), :mod:`~.executions`,
:mod:`~.checkpoints`, :mod:`~.batches` and :mod:`~.results`. Import from here: every name the
single ``repositories`` module had (its tables included) is re-exported.
"""

from wtb_domain.adapters.sql.repositories.batches import INSERT_BATCH, SqlBatches
from wtb_domain.adapters.sql.repositories.batches import _batch_values as _batch_values
from wtb_domain.adapters.sql.repositories.checkpoints import (
    IN_CHUNK,
    INSERT_BLOBS,
    INSERT_CHECKPOINTS,
    SqlCheckpoints,
)
from wtb_domain.adapters.sql.repositories.executions import (
    INSERT_EXECUTION_SQLITE,
    MUTABLE,
    UPDATE_EXECUTION,
    SqlExecutions,
    execution_update_params,
)
from wtb_domain.adapters.sql.repositories.results import INSERT_RESULTS, LEAF_COLUMNS, SqlResults
from wtb_domain.adapters.sql.repositories.results import _leaf as _leaf
from wtb_domain.adapters.sql.repositories.rows import _checkpoint_from as _checkpoint_from
from wtb_domain.adapters.sql.repositories.rows import _execution_from as _execution_from
from wtb_domain.adapters.sql.repositories.rows import aware, checkpoint_values, execution_values
from wtb_domain.adapters.sql.tables import BATCHES, BLOBS, CHECKPOINTS, EXECUTIONS, RESULTS, ROLLUPS

__all__ = [
    "BATCHES",
    "BLOBS",
    "CHECKPOINTS",
    "EXECUTIONS",
    "INSERT_BATCH",
    "INSERT_BLOBS",
    "INSERT_CHECKPOINTS",
    "INSERT_EXECUTION_SQLITE",
    "INSERT_RESULTS",
    "IN_CHUNK",
    "LEAF_COLUMNS",
    "MUTABLE",
    "RESULTS",
    "ROLLUPS",
    "UPDATE_EXECUTION",
    "SqlBatches",
    "SqlCheckpoints",
    "SqlExecutions",
    "SqlResults",
    "aware",
    "checkpoint_values",
    "execution_update_params",
    "execution_values",
]

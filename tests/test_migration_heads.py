"""The schema check reads the head revision from the migration files without Alembic; it
agrees with Alembic on the shipped migrations and gives up (-> Alembic) when unsure."""

from __future__ import annotations

import string
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from wtb_domain.adapters.sql.heads import scan_head, shipped_head, versions_dir
from wtb_domain.adapters.sql.migrate import head_revision

REPO = Path(__file__).resolve().parents[1]


def write(directory: Path, name: str, revision: str, down: str) -> None:
    (directory / f"{name}.py").write_text(
        f'"""m"""\nrevision = {revision}\ndown_revision = {down}\nbranch_labels = None\n'
    )


def test_the_shipped_head_is_alembics() -> None:
    assert shipped_head() is not None
    assert shipped_head() == head_revision()
    assert len(list(versions_dir().glob("0*.py"))) >= 2


def test_opening_a_store_at_head_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wtb.db'}"
    check = (
        "import sys; from wtb_domain import sql_app; sql_app(sys.argv[1]); "
        "print('alembic' in sys.modules)"
    )
    run = [sys.executable, "-c", check, url]
    first = subprocess.run(run, capture_output=True, text=True, cwd=REPO, check=True)
    assert first.stdout.strip() == "True"  # a new database is migrated by Alembic
    again = subprocess.run(run, capture_output=True, text=True, cwd=REPO, check=True)
    assert again.stdout.strip() == "False"  # at head: two queries, no Alembic


def test_annotations_merges_and_quotes(tmp_path: Path) -> None:
    write(tmp_path, "a", '"r1"', "None")
    write(tmp_path, "b", "'r2'", '"r1"')
    write(tmp_path, "c", '"r3"', '"r1"')
    (tmp_path / "d.py").write_text('revision: str = "r4"\ndown_revision: tuple = ("r2", "r3")\n')
    assert scan_head(tmp_path) == "r4"


def test_unsure_gives_none(tmp_path: Path) -> None:
    write(tmp_path, "a", '"r1"', "None")
    write(tmp_path, "b", '"r2"', '"r1"')
    write(tmp_path, "c", '"r3"', '"r1"')
    assert scan_head(tmp_path) is None  # two heads
    (tmp_path / "c.py").unlink()
    assert scan_head(tmp_path) == "r2"
    write(tmp_path, "c", 'NAME + "x"', '"r2"')
    assert scan_head(tmp_path) is None  # computed
    write(tmp_path, "c", '"r3"', '"missing"')
    assert scan_head(tmp_path) is None  # a parent no file defines
    (tmp_path / "c.py").write_text('revision = "r3"\n')
    assert scan_head(tmp_path) is None  # no down_revision
    (tmp_path / "c.py").unlink()
    write(tmp_path, "z", '"r2"', '"r1"')
    assert scan_head(tmp_path) is None  # a revision defined twice
    assert scan_head(tmp_path / "nothing-here") is None


names = st.lists(
    st.text(string.ascii_lowercase + string.digits + "_", min_size=1, max_size=12),
    min_size=1,
    max_size=8,
    unique=True,
)


@settings(max_examples=50, deadline=None)
@given(chain=names, order=st.randoms(use_true_random=False))
def test_a_chain_in_any_file_order_has_its_last_revision_as_head(
    tmp_path_factory: object, chain: list[str], order: object
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        files = list(enumerate(chain))
        order.shuffle(files)  # type: ignore[attr-defined]
        for k, (i, rev) in enumerate(files):
            down = "None" if i == 0 else f'"{chain[i - 1]}"'
            write(directory, f"f{k:02d}", f'"{rev}"', down)
        assert scan_head(directory) == chain[-1]

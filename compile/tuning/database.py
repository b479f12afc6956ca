"""A record set opened as MetaSchedule's JSONDatabase: what tune, adapt and build read and write.

The files' own rules (checking, repairing, merging, pruning) are core's
(:mod:`alexnet_tvm.records`), which a deployment machine imports without TVM's compiler;
handing them to MetaSchedule needs ``tvm.s_tir.meta_schedule``, so it lives here in compile.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alexnet_tvm.errors import DatabaseError
from alexnet_tvm.records import RECORDS, WORKLOADS, check_database, copy_pair, dedupe_workloads


def open_database(folder: Path, for_tuning: bool):
    """A MetaSchedule JSONDatabase on the checked files; read-only users get a private copy.

    The JSONDatabase reads both files when it is made and only touches them again to
    append a commit, which read-only users never do, so their copy is removed at once.
    """
    folder = Path(folder)
    if for_tuning:
        folder.mkdir(parents=True, exist_ok=True)
        check_database(folder, repair=True)
        dedupe_workloads(folder)  # before MetaSchedule appends to it (see there)
        return _json_database(folder, folder)
    check_database(folder, repair=False)
    with tempfile.TemporaryDirectory(prefix="alexnet-tvm-db-") as tmp:
        copy_pair(folder, Path(tmp))
        return _json_database(Path(tmp), folder)


def check_readable(folder: Path) -> None:
    """Raise DatabaseError unless MetaSchedule can read the pair in ``folder``: the ``validate``
    of :func:`alexnet_tvm.records.merge_tuning_records` (records tuned with another TVM version)."""
    open_database(folder, for_tuning=False)


def _json_database(where: Path, folder: Path):
    from tvm.s_tir.meta_schedule.database import JSONDatabase

    from ..int8.tensor_intrin import VNNI_INTRIN, register_intrinsic

    records = where / RECORDS
    if records.is_file() and VNNI_INTRIN in records.read_text():
        register_intrinsic()  # int8 records name it; the database refuses to open otherwise

    try:
        return JSONDatabase(path_workload=str(where / WORKLOADS), path_tuning_record=str(where / RECORDS),
                            allow_missing=True)
    except Exception as e:  # MetaSchedule raises assorted FFI errors on entries it cannot parse
        raise DatabaseError(f"{folder}: corrupt tuning database, MetaSchedule cannot read it "
                            f"({type(e).__name__}: {str(e).strip().splitlines()[-1][:200]})") from None

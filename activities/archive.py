"""The ``archive_case`` activity: a closed case written to the archive store it is given
(stores/archive.py: files or PostgreSQL, encrypted at rest; writing the same case again with the
same content changes nothing). The worker opens the store and holds one ``Archiver``."""

from __future__ import annotations

from temporalio import activity

from domain.case import ArchivedCase
from stores.archive import Archive, ArchiveReceipt


class Archiver:
    """The activity over one archive store."""

    def __init__(self, store: Archive) -> None:
        self.store = store

    @activity.defn(name="archive_case")
    async def archive_case(self, case: ArchivedCase) -> ArchiveReceipt:
        receipt = await self.store.write(case)
        activity.logger.info("case archived", extra={"reference": case.reference, "kind": case.kind,
                                                     "written": receipt.written})
        return receipt

"""Uploaded plan files sorted into one plan: several DICOM-RT files in any order, or one DVH table
(with an optional RTPLAN).

The app's "Import plan" section takes whatever the user drops: the RTDOSE, RTSTRUCT and RTPLAN of a
plan (sorted by their SOP class, :func:`~engine.dvh.dicom.sort_dicom`), or one DVH table — a file
without the DICOM preamble whose name ends in one of :data:`DVH_SUFFIXES` (the documented CSV or
the Eclipse text export, :mod:`engine.dvh.files`). Any other file is read as DICOM, so a file that
is neither is refused by the DICOM reader, naming it ("… is not a DICOM file"). Content is given
as bytes (the app reads each upload once and deletes it), so nothing here touches the disk.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.dvh.dicom import sort_dicom
from engine.dvh.plan import PlanData, read_plan
from engine.dvh.sources import ImportLimits, PlanError

__all__ = ["DVH_SUFFIXES", "largest_file_bytes", "read_uploaded_plan"]

DVH_SUFFIXES = (".csv", ".txt", ".tsv")
"""File name endings (any case) of a DVH table; a file with the DICOM preamble is DICOM anyway."""
_DICOM_PREAMBLE = slice(128, 132)


def largest_file_bytes(limits: ImportLimits | None = None) -> int:
    """The largest plan file ``limits`` accept, of any kind, bytes (an upload's size cap)."""
    limits = limits or ImportLimits()
    return max(limits.rtdose_bytes, limits.rtstruct_bytes, limits.rtplan_bytes, limits.dvh_bytes)


def _is_table(name: str, data: bytes) -> bool:
    return data[_DICOM_PREAMBLE] != b"DICM" and name.lower().endswith(DVH_SUFFIXES)


def read_uploaded_plan(files: Sequence[tuple[str, bytes]],
                       limits: ImportLimits | None = None) -> PlanData:
    """Read the files of one upload as a plan (:func:`~engine.dvh.plan.read_plan`).

    Args:
        files: ``(name as the user's browser gave it, content)`` per file, in any order.
        limits: file size limits.

    Raises:
        PlanError: no file; two DVH tables; a DVH table with an RTDOSE or RTSTRUCT; a file that is
            not DICOM (and not a DVH table); two files of one kind; a file missing; or any refusal
            of the readers, each naming the file, the tag or the structure.
    """
    if not files:
        raise PlanError("no file was given: upload the plan's RTDOSE and RTSTRUCT (and RTPLAN) "
                        "files together, or one DVH table")
    tables = [f for f in files if _is_table(*f)]
    others = [f for f in files if not _is_table(*f)]
    if len(tables) > 1:
        raise PlanError(f"{tables[0][0]} and {tables[1][0]} are both DVH tables; upload one DVH "
                        "table per plan")
    dicom = sort_dicom(others, limits)
    if tables:
        if dicom.rtdose is not None or dicom.rtstruct is not None:
            raise PlanError(f"give either a DVH table ({tables[0][0]}) or the RTDOSE and "
                            "RTSTRUCT files, not both")
        return read_plan(dvh=tables[0], rtplan=dicom.rtplan, limits=limits)
    return read_plan(rtdose=dicom.rtdose, rtstruct=dicom.rtstruct, rtplan=dicom.rtplan,
                     limits=limits)

"""A protocol's case inputs between a session's case table, the database and the inputs CSV.

The store keeps, per case, the id columns, the features, both doses, the physician's proposed
dose and the two outcomes (:func:`stored_columns`; the note is kept apart, versioned on its own).
This module turns a validated case table (:mod:`engine.core.schema`) into the store's records
(:func:`case_records`), stored records back into a validated table (:func:`cases_from_stored`),
merges a table into another by case label (:func:`merge_cases`), adds a follow-up, the
physician's proposed dose or an imported plan's dosimetric features to a case
(:func:`with_follow_up`, :func:`with_proposal`, :func:`with_features`), and writes
the inputs in the upload format (:func:`inputs_csv`, which :func:`engine.core.schema.read_cases`
reads back unchanged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from engine.arclids.recommend import input_hash
from engine.core.protocols import Protocol
from engine.core.schema import PROPOSAL_COLUMN, case_labels, validate_dataframe
from engine.core.tabular import formula_safe
from engine.platform.store import CaseRecord

__all__ = [
    "case_records",
    "cases_from_stored",
    "inputs_csv",
    "merge_cases",
    "stored_columns",
    "with_features",
    "with_follow_up",
    "with_proposal",
]


def stored_columns(protocol: Protocol) -> list[str]:
    """The columns the store keeps of a case, in the documented order: ids, features,
    ``dose_eval_gy``, ``dose_adapt_gy``, ``proposed_dose_adapt_gy`` and the target and
    organ-at-risk outcomes."""
    return [*protocol.id_columns, *protocol.feature_names, "dose_eval_gy", "dose_adapt_gy",
            PROPOSAL_COLUMN, *protocol.outcome_names]


def _optional(protocol: Protocol) -> tuple[str, ...]:
    """The stored columns a case may leave unknown."""
    return ("dose_adapt_gy", PROPOSAL_COLUMN, *protocol.outcome_names)


def case_records(cases: pd.DataFrame, protocol: Protocol) -> list[CaseRecord]:
    """What the store keeps of each case of a validated table (ids, features, doses, a known
    proposed dose, known outcomes, the input hash; no note), one record per row in row order.

    A case without a proposed dose stores no ``proposed_dose_adapt_gy`` key at all, so that
    cases saved before the column existed are not saved again as a new version unchanged."""
    columns = stored_columns(protocol)
    with_site = "site_id" in protocol.id_columns and "site_id" in cases.columns
    out = []
    for label, (_, row) in zip(case_labels(cases), cases.iterrows(), strict=True):
        values = {c: (row[c] if c in row.index else None) for c in columns}
        if values[PROPOSAL_COLUMN] is None or pd.isna(values[PROPOSAL_COLUMN]):
            del values[PROPOSAL_COLUMN]
        out.append(CaseRecord(label, str(row["patient_id"]),
                              int(row["site_id"]) if with_site else None, values,
                              input_hash(row, protocol)))
    return out


def cases_from_stored(
    protocol: Protocol, records: Sequence[Mapping[str, Any]], *, require_outcomes: bool = False
) -> pd.DataFrame:
    """The validated case table of stored input values (one mapping per case, e.g.
    ``SavedInput.values``; a missing or NaN value is unknown).

    Raises:
        engine.core.tabular.SchemaError: when a stored record no longer validates (with
            ``require_outcomes``, also when an outcome is unknown).
    """
    columns = stored_columns(protocol)
    frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in records], columns=columns)
    frame = frame.astype(object).where(frame.notna(), None)
    return validate_dataframe(frame, protocol, require_outcomes=require_outcomes)


def with_follow_up(
    case: pd.DataFrame,
    protocol: Protocol,
    *,
    dose_adapt_gy: float | None,
    target_outcome: object,
    oar_outcome: object,
) -> pd.DataFrame:
    """A validated case (a one-row table) with the adaptive dose given (Gy per fraction) and the
    target and organ-at-risk outcomes (1, 0, "1", "0"; None when still unknown) set.

    Raises:
        engine.core.tabular.SchemaError: when a value is refused (e.g. a dose off the grid range).
    """
    frame = case[[c for c in stored_columns(protocol) if c in case.columns]].copy()
    frame["dose_adapt_gy"] = dose_adapt_gy
    frame[protocol.target.outcome] = target_outcome
    frame[protocol.oar.outcome] = oar_outcome
    frame = frame.astype(object).where(frame.notna(), None)
    return validate_dataframe(frame, protocol)


def with_proposal(case: pd.DataFrame, protocol: Protocol, dose_gy: float | None) -> pd.DataFrame:
    """A validated case (a one-row table) with the physician's proposed adaptive dose per
    fraction set (Gy; None removes the proposal).

    Raises:
        engine.core.tabular.SchemaError: when the dose is refused (e.g. off the grid range),
            named as a ``proposed_dose_adapt_gy`` problem.
    """
    frame = case[[c for c in stored_columns(protocol) if c in case.columns]].copy()
    frame[PROPOSAL_COLUMN] = dose_gy
    frame = frame.astype(object).where(frame.notna(), None)
    return validate_dataframe(frame, protocol)


def with_features(case: pd.DataFrame, protocol: Protocol,
                  values: Mapping[str, float]) -> pd.DataFrame:
    """A validated case (a one-row table) with some features replaced, e.g. the features of an
    imported plan (:attr:`engine.dvh.PlanImport.features`, each in its feature's unit).

    Raises:
        KeyError: a name in ``values`` is not a feature of ``protocol``.
        engine.core.tabular.SchemaError: a value is refused (outside the feature's accepted
            range), named as a problem of that feature's column.
    """
    unknown = [name for name in values if name not in protocol.feature_names]
    if unknown:
        raise KeyError(f"{unknown[0]!r} is not a feature of protocol {protocol.name}")
    frame = case[[c for c in stored_columns(protocol) if c in case.columns]].copy()
    for name, value in values.items():
        frame[name] = value
    frame = frame.astype(object).where(frame.notna(), None)
    return validate_dataframe(frame, protocol)


def merge_cases(current: pd.DataFrame, new: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``current`` without the cases whose label is in ``new``, then ``new`` (index reset).

    Returns:
        (the merged table, how many cases of ``new`` replaced one of ``current``).
    """
    current_labels = case_labels(current)
    new_labels = case_labels(new)
    replaced = sum(lab in current_labels for lab in new_labels)
    keep = current.iloc[[i for i, lab in enumerate(current_labels) if lab not in new_labels]]
    merged = pd.concat([keep, new], ignore_index=True) if not keep.empty else new.copy()
    return merged.reset_index(drop=True), replaced


def inputs_csv(cases: pd.DataFrame, protocol: Protocol, notes: Mapping[str, str]) -> str:
    """The cases in the upload format with their notes (keyed by case label): the stored
    columns, the optional ones (``dose_adapt_gy``, ``proposed_dose_adapt_gy``, outcomes) only when
    some value is known, then ``note``; ten significant digits, so that the file uploads again
    unchanged."""
    table = cases.copy()
    table["note"] = [notes.get(lab, "") for lab in case_labels(cases)]
    columns = [c for c in stored_columns(protocol) if c in table.columns
               and (c not in _optional(protocol) or table[c].notna().any())]
    return formula_safe(table[[*columns, "note"]]).to_csv(
        index=False, float_format="%.10g", lineterminator="\n")

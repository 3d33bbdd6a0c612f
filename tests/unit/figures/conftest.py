"""Fixtures of the figure tests: the NSCLC protocol, three cases, and their recommendations
from one curve model and from a calibrated-like ensemble."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.arclids.recommend import Recommendation, recommend
from engine.core.protocols import Protocol, load_protocol
from tests.unit.figures.helpers import CurveModel, make_cases


@pytest.fixture(scope="module")
def nsclc() -> Protocol:
    return load_protocol("nsclc")


@pytest.fixture(scope="module")
def cases(nsclc: Protocol) -> pd.DataFrame:
    return make_cases(nsclc, ["P-001", "P-002", "P-003"])


@pytest.fixture(scope="module")
def recs(nsclc: Protocol, cases: pd.DataFrame) -> list[Recommendation]:
    return recommend(cases, nsclc, CurveModel(members=1))


@pytest.fixture(scope="module")
def ensemble_recs(nsclc: Protocol, cases: pd.DataFrame) -> list[Recommendation]:
    """A calibrated-like ensemble: 5 members and an 80 % interval."""
    return recommend(cases, nsclc, CurveModel(members=5, level=0.8))

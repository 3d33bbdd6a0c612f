"""What the app says beside a model about its probabilities (app/shared.py)."""

from __future__ import annotations

from app import shared
from engine.figures.wording import PROBABILITY_QUALITY_UNKNOWN


def test_quality_is_shown_for_the_measured_models_only():
    for name in shared.PROTOCOLS:
        for key, choice in shared.MODEL_CHOICES[name].items():
            text = shared.probability_quality_of(name, choice.model.version)
            if key == "reference":
                assert text is None  # the truth needs no score against the truth
            else:
                assert text is not None and text.startswith("Brier score on a fresh virtual")
        # a version no saved evaluation measured (e.g. promoted by Learning Mode)
        assert shared.probability_quality_of(name, "rtoe-x-glogd-0") == (
            PROBABILITY_QUALITY_UNKNOWN)

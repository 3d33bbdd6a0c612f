"""How the app loads outcome models (app/shared.py over the engine's serving catalogue), without
a browser.

A learned model that does not load is left out of the choices with its one-line error, the
reference model is always offered, and nothing raises.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app import shared
from engine.arclids.architectures import ARCH_KEYS, REFERENCE
from engine.arclids.rtoe_eval import load_rtoe_review
from engine.arclids.serving import load_catalogue


@pytest.mark.parametrize("manifest", [None, "{ not json", '{"schema": 99}'])
def test_missing_or_broken_models_fall_back_to_the_reference(
    tmp_path: Path, manifest: str | None
) -> None:
    if manifest is not None:
        (tmp_path / "manifest.json").write_text(manifest, encoding="utf-8")
    catalogue = load_catalogue("nsclc", tmp_path)
    choices, errors = catalogue.choices, catalogue.errors
    assert list(choices) == [REFERENCE]
    assert choices[REFERENCE].model.name == "reference"
    assert choices[REFERENCE].choice_label == "Reference: virtual-trial truth"
    assert set(errors) == set(ARCH_KEYS)
    for message in errors.values():
        assert message and "\n" not in message
    evaluation, why = load_rtoe_review("nsclc", tmp_path)
    assert evaluation is None and why and "\n" not in why


def test_loaded_state_is_consistent() -> None:
    for name in shared.PROTOCOLS:
        choices = shared.MODEL_CHOICES[name]
        assert list(choices)[-1] == REFERENCE  # learned first, reference last
        assert set(choices) | set(shared.MODEL_ERRORS[name]) == {*ARCH_KEYS,
                                                                 REFERENCE}
        assert shared.DEFAULT_MODEL[name] == ("glogd" if "glogd" in choices
                                              else REFERENCE)
        assert shared.REFERENCE_MODELS[name] is choices[REFERENCE].model
        for key, choice in choices.items():
            if key != REFERENCE:
                assert choice.model.protocol.name == name
                assert len(choice.model.tcp_members) > 1
        assert (shared.EVALUATIONS[name] is None) != (shared.EVALUATION_ERRORS[name] is None)

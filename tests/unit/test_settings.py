"""engine.settings: the one reader of repository paths and ARTDS_* environment variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine import settings

ROOT = Path(__file__).resolve().parents[2]


def test_paths_point_into_the_repository() -> None:
    assert settings.ROOT_DIR == ROOT
    assert (settings.MODELS_DIR / "manifest.json").is_file()
    assert (settings.EXAMPLES_DIR / "nsclc_patients.csv").is_file()
    assert settings.DATA_DIR.is_dir()


def test_learning_dir_default_and_override(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.delenv(settings.LEARNING_DIR_ENV, raising=False)
    assert settings.learning_dir() == settings.VAR_DIR / "models"
    monkeypatch.setenv(settings.LEARNING_DIR_ENV, f"  {tmp_path}  ")
    assert settings.learning_dir() == tmp_path


def test_passwords_are_read_verbatim_and_cookie_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.PASSWORD_ENV, "  spaced secret  ")
    assert settings.env_password(settings.PASSWORD_ENV) == "  spaced secret  "
    assert settings.env_text(settings.PASSWORD_ENV) == "spaced secret"
    for value, expected in (("1", True), ("yes", True), ("0", False), ("", False)):
        monkeypatch.setenv(settings.COOKIE_SECURE_ENV, value)
        assert settings.cookie_secure() is expected


def test_secret_key_override_needs_32_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.SECRET_KEY_ENV, raising=False)
    assert settings.secret_key_override() is None
    monkeypatch.setenv(settings.SECRET_KEY_ENV, "k" * 32)
    assert settings.secret_key_override() == "k" * 32
    monkeypatch.setenv(settings.SECRET_KEY_ENV, "short")
    with pytest.raises(ValueError, match="ARTDS_SECRET_KEY"):
        settings.secret_key_override()


def test_no_other_module_reads_the_environment_for_artds_variables() -> None:
    """Every ARTDS_* variable is read in engine/settings.py and nowhere else in engine/ or app/
    (docs/clinic.md's table is checked against this one module)."""
    reads = re.compile(r"os\.environ|os\.getenv|getenv\(")
    offenders = []
    for path in [*(ROOT / "engine").rglob("*.py"), *(ROOT / "app").rglob("*.py")]:
        if path == ROOT / "engine" / "settings.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if reads.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []


def test_every_documented_variable_is_a_settings_constant() -> None:
    """README's variable table names exactly the variables settings defines."""
    documented = set(re.findall(r"`(ARTDS_[A-Z_]+)`", (ROOT / "README.md").read_text()))
    defined = {v for k, v in vars(settings).items() if k.endswith("_ENV") and isinstance(v, str)}
    assert documented <= defined, documented - defined

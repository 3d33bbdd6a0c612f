"""engine.platform.registry: artifacts round-trip, and anything not exactly as recorded is
refused."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from engine import __version__ as artds_version
from engine import settings
from engine.platform import registry
from engine.platform.registry import (
    ArtifactError,
    ArtifactMeta,
    data_hash,
    list_artifacts,
    load_artifact,
    load_json_artifact,
    save_artifact,
    save_json_artifact,
)

META = {
    "seed": 7,
    "config": {"protocol": "nsclc", "lr": 5e-4, "width": 64, "epochs": 50},
    "data_hash": "ab" * 32,
    "cohort_version": "nsclc-virtual-1",
    "metrics": {"auroc": 0.74, "n_val": 14},
}
"""Meta keyword arguments used by most saves."""

ENTRY_FIELDS = {
    "sha256",
    "bytes",
    "family",
    "name",
    "seed",
    "config",
    "data_hash",
    "cohort_version",
    "metrics",
    "created",
    "artds_version",
    "torch_version",
}
"""Fields every manifest entry must hold."""


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A small MLP state_dict."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    return model.state_dict()


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """An empty models folder (never the repository's)."""
    return tmp_path / "models"


def _manifest(models: Path) -> dict:
    return json.loads((models / "manifest.json").read_text())


def test_round_trip(models: Path) -> None:
    state = _state()
    meta = save_artifact(models, "rtoe", "nsclc_glogd_tcp_0", state, **META)
    loaded, loaded_meta = load_artifact(models, "rtoe", "nsclc_glogd_tcp_0")
    assert list(loaded) == list(state)
    for key, tensor in state.items():
        assert torch.equal(loaded[key], tensor)
        assert loaded[key].dtype == tensor.dtype
    assert loaded_meta == meta
    assert meta.file == "rtoe/nsclc_glogd_tcp_0.pt"
    assert (models / meta.file).is_file()
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    model.load_state_dict(loaded)  # a real state_dict


def test_identical_inputs_give_identical_files(models: Path, tmp_path: Path) -> None:
    a = save_artifact(models, "rtoe", "a", _state(), **META)
    b = save_artifact(tmp_path / "other", "rtoe", "b", _state(), **META)
    assert a.sha256 == b.sha256
    assert (models / a.file).read_bytes() == (tmp_path / "other" / b.file).read_bytes()
    c = save_artifact(models, "rtoe", "c", _state(seed=1), **META)
    assert c.sha256 != a.sha256


def test_recorded_hash_is_that_of_the_file(models: Path) -> None:
    meta = save_artifact(models, "rtoe", "m", _state(), **META)
    data = (models / meta.file).read_bytes()
    assert meta.sha256 == hashlib.sha256(data).hexdigest()
    assert meta.bytes == len(data)


def test_a_view_is_saved_without_its_base_storage(models: Path) -> None:
    base = torch.arange(100_000, dtype=torch.float32)
    meta = save_artifact(models, "rtoe", "view", {"w": base[:4]}, **META)
    assert meta.bytes < 10_000
    loaded, _ = load_artifact(models, "rtoe", "view")
    assert torch.equal(loaded["w"], base[:4])


def test_manifest_entries_hold_all_fields(models: Path) -> None:
    save_artifact(models, "rtoe", "nsclc_glogd_tcp_0", _state(), **META)
    save_json_artifact(models, "rtoe", "nsclc_cv", {"auroc": [0.7, 0.8]}, **META)
    text = (models / "manifest.json").read_text()
    manifest = json.loads(text)
    assert manifest["schema"] == 1
    assert sorted(manifest["artifacts"]) == ["rtoe/nsclc_cv.json", "rtoe/nsclc_glogd_tcp_0.pt"]
    for key, entry in manifest["artifacts"].items():
        assert set(entry) == ENTRY_FIELDS
        assert entry["family"] == "rtoe"
        assert key == f"rtoe/{entry['name']}{Path(key).suffix}"
        assert entry["sha256"] == hashlib.sha256((models / key).read_bytes()).hexdigest()
        assert entry["bytes"] == (models / key).stat().st_size
        assert entry["seed"] == 7
        assert entry["config"] == META["config"]
        assert entry["metrics"] == META["metrics"]
        assert entry["data_hash"] == META["data_hash"]
        assert entry["cohort_version"] == "nsclc-virtual-1"
        assert entry["artds_version"] == artds_version
        assert entry["torch_version"] == torch.__version__
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["created"])
        datetime.fromisoformat(entry["created"])
    assert text == json.dumps(manifest, sort_keys=True, indent=2) + "\n"  # keys sorted, indent 2


def test_tampered_file_is_refused(models: Path) -> None:
    meta = save_artifact(models, "rtoe", "nsclc_glogd_tcp_0", _state(), **META)
    path = models / meta.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError) as info:
        load_artifact(models, "rtoe", "nsclc_glogd_tcp_0")
    message = str(info.value)
    assert (
        "rtoe/nsclc_glogd_tcp_0.pt: sha256 mismatch (file changed since it was recorded" in message
    )
    assert "manifest.json" in message
    assert "retrain with `artds train rtoe --protocol nsclc` or restore the file" in message
    assert "\n" not in message


def test_retrain_hint_falls_back_to_the_protocol_prefix_of_the_name(models: Path) -> None:
    save_artifact(models, "rtoe", "hcc_single_lc_2", _state(), **{**META, "config": {}})
    (models / "rtoe" / "hcc_single_lc_2.pt").unlink()
    with pytest.raises(ArtifactError, match=r"retrain with `artds train rtoe --protocol hcc`"):
        load_artifact(models, "rtoe", "hcc_single_lc_2")
    with pytest.raises(ArtifactError, match=r"retrain with `artds train rtoe` or restore"):
        load_artifact(models, "rtoe", "other_name")


def test_missing_file_is_refused(models: Path) -> None:
    meta = save_artifact(models, "rtoe", "gone", _state(), **META)
    (models / meta.file).unlink()
    with pytest.raises(ArtifactError, match=r"rtoe/gone\.pt: missing file \(listed in .*manifest"):
        load_artifact(models, "rtoe", "gone")


def test_unlisted_file_is_refused(models: Path) -> None:
    save_artifact(models, "rtoe", "listed", _state(), **META)
    torch.save(_state(), models / "rtoe" / "stray.pt")
    with pytest.raises(ArtifactError, match=r"rtoe/stray\.pt: not listed in the manifest"):
        load_artifact(models, "rtoe", "stray")


def test_no_manifest_at_all_is_refused(models: Path) -> None:
    (models / "rtoe").mkdir(parents=True)
    torch.save(_state(), models / "rtoe" / "m.pt")
    with pytest.raises(ArtifactError, match="not listed in the manifest"):
        load_artifact(models, "rtoe", "m")
    assert list_artifacts(models) == []


def test_broken_manifest_is_reported(models: Path) -> None:
    save_artifact(models, "rtoe", "m", _state(), **META)
    (models / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match=r"manifest\.json: not valid JSON"):
        load_artifact(models, "rtoe", "m")
    (models / "manifest.json").write_text('{"schema": 99, "artifacts": {}}')
    with pytest.raises(ArtifactError, match="not an artds manifest of schema 1"):
        list_artifacts(models)


class _OpensAFile:
    """Pickles to a call of ``open(path, "w")``: unpickling it would create ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


def _register_forged(models: Path, name: str, obj: object) -> None:
    """Overwrite a saved artifact with ``torch.save(obj)`` (or raw bytes) and record its sha256,
    as an attacker with write access to models/ could."""
    meta = save_artifact(models, "rtoe", name, _state(), **META)
    path = models / meta.file
    if isinstance(obj, bytes):
        path.write_bytes(obj)
    else:
        torch.save(obj, path)
    manifest = _manifest(models)
    data = path.read_bytes()
    manifest["artifacts"][meta.file]["sha256"] = hashlib.sha256(data).hexdigest()
    manifest["artifacts"][meta.file]["bytes"] = len(data)
    (models / "manifest.json").write_text(json.dumps(manifest))


def test_pickle_that_would_run_code_is_refused_without_running_it(
    models: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    _register_forged(models, "evil", {"w": torch.zeros(2), "x": _OpensAFile(marker)})
    with pytest.raises(ArtifactError) as info:
        load_artifact(models, "rtoe", "evil")
    assert "rtoe/evil.pt: not a state_dict of tensors" in str(info.value)
    assert "weights_only" in str(info.value)
    assert "\n" not in str(info.value)
    assert not marker.exists()  # nothing was executed


@pytest.mark.parametrize(
    "obj",
    [
        {"w": torch.zeros(2), "step": 3},
        {"outer": {"w": torch.zeros(2)}},
        [torch.zeros(2)],
        torch.zeros(2),
        b"PK\x03\x04 not really a zip archive",
        b"not a torch file",
    ],
    ids=["int-value", "nested", "list", "bare-tensor", "corrupt-zip", "garbage"],
)
def test_safe_pickle_that_is_not_a_flat_state_dict_is_refused(models: Path, obj: object) -> None:
    _register_forged(models, "odd", obj)
    with pytest.raises(ArtifactError, match=r"rtoe/odd\.pt: not a state_dict of tensors"):
        load_artifact(models, "rtoe", "odd")


def test_save_validates_its_inputs(models: Path) -> None:
    with pytest.raises(ValueError, match=r"must map str to torch\.Tensor"):
        save_artifact(models, "rtoe", "m", {"w": np.zeros(2)}, **META)  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="non-empty dict"):
        save_artifact(models, "rtoe", "m", {}, **META)
    for family, name in [("../etc", "m"), ("rtoe", "a/b"), ("rtoe", ".hidden"), ("", "m")]:
        with pytest.raises(ValueError, match="must be 1-128 characters"):
            save_artifact(models, family, name, _state(), **META)
    with pytest.raises(ValueError, match="metrics must be JSON-serialisable with finite numbers"):
        save_artifact(models, "rtoe", "m", _state(), **{**META, "metrics": {"auroc": float("nan")}})
    with pytest.raises(ValueError, match="config must be JSON-serialisable"):
        save_artifact(models, "rtoe", "m", _state(), **{**META, "config": {"f": object()}})
    with pytest.raises(ValueError, match="seed must be an int"):
        save_artifact(models, "rtoe", "m", _state(), **{**META, "seed": 1.5})
    assert not (models / "manifest.json").exists()


def test_list_artifacts_filters_by_family(models: Path) -> None:
    save_artifact(models, "rtoe", "b", _state(), **META)
    save_artifact(models, "rtoe", "a", _state(), **META)
    save_artifact(models, "odm", "q0", _state(), **META)
    assert [m.file for m in list_artifacts(models)] == ["odm/q0.pt", "rtoe/a.pt", "rtoe/b.pt"]
    assert [m.name for m in list_artifacts(models, "rtoe")] == ["a", "b"]
    assert list_artifacts(models, "gan") == []
    assert all(isinstance(m, ArtifactMeta) for m in list_artifacts(models))


def test_resave_replaces_entry(models: Path) -> None:
    first = save_artifact(models, "rtoe", "m", _state(0), **META)
    second = save_artifact(models, "rtoe", "m", _state(1), **{**META, "seed": 8})
    assert first.sha256 != second.sha256
    (meta,) = list_artifacts(models)
    assert meta.seed == 8
    assert meta.sha256 == second.sha256
    assert not [p for p in (models / "rtoe").iterdir() if p.name.endswith(".tmp")]


def test_json_artifact_round_trip_and_tamper_detection(models: Path) -> None:
    payload = {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.8, 1.0], "auroc": 0.74, "label": "tcp"}
    meta = save_json_artifact(models, "rtoe", "nsclc_roc", payload, **META)
    assert meta.file == "rtoe/nsclc_roc.json"
    loaded, loaded_meta = load_json_artifact(models, "rtoe", "nsclc_roc")
    assert loaded == payload
    assert loaded_meta == meta
    path = models / meta.file
    path.write_text(path.read_text().replace("0.8", "0.9"))
    with pytest.raises(ArtifactError, match=r"rtoe/nsclc_roc\.json: sha256 mismatch"):
        load_json_artifact(models, "rtoe", "nsclc_roc")
    with pytest.raises(ArtifactError, match="not listed in the manifest"):
        load_json_artifact(models, "rtoe", "nope")
    with pytest.raises(ValueError, match="payload must be JSON-serialisable"):
        save_json_artifact(models, "rtoe", "bad", {"x": float("inf")}, **META)


def test_json_artifact_accepts_numpy_values(models: Path) -> None:
    payload = {"n_events": np.int64(16), "auroc": np.float32(0.5), "fpr": np.array([0.0, 1.0])}
    save_json_artifact(models, "rtoe", "np", payload, **{**META, "metrics": {"n": np.int64(3)}})
    loaded, meta = load_json_artifact(models, "rtoe", "np")
    assert loaded == {"n_events": 16, "auroc": 0.5, "fpr": [0.0, 1.0]}
    assert meta.metrics == {"n": 3}


def test_json_and_pt_of_one_name_are_distinct(models: Path) -> None:
    save_artifact(models, "rtoe", "m", _state(), **META)
    with pytest.raises(ArtifactError, match="not listed"):
        load_json_artifact(models, "rtoe", "m")


def test_data_hash_is_canonical_stable_and_sensitive() -> None:
    frame = pd.DataFrame({"b": [1.5, 2.0, float("nan")], "a": [1, 2, 3]}, index=[10, 11, 12])
    expected = hashlib.sha256(b"a,b\n1,1.5\n2,2\n3,\n").hexdigest()
    assert data_hash(frame) == expected
    assert data_hash(frame.copy()) == expected
    assert data_hash(frame[["a", "b"]].reset_index(drop=True)) == expected  # column order, index
    changed = frame.copy()
    changed.loc[11, "b"] = 2.000001
    assert data_hash(changed) != expected
    assert data_hash(frame.iloc[::-1]) != expected  # row order matters


def test_data_hash_sees_one_value_in_a_larger_table() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 13)), columns=[f"f{i}" for i in range(13)])
    before = data_hash(frame)
    frame.iloc[137, 5] *= 1 + 1e-8
    assert data_hash(frame) != before


def test_models_dir_default_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ARTDS_MODELS_DIR", raising=False)
    assert settings.models_dir() == settings.MODELS_DIR
    repo = Path(registry.__file__).resolve().parents[2]
    assert repo / "models" == settings.MODELS_DIR
    monkeypatch.setenv("ARTDS_MODELS_DIR", str(tmp_path))
    assert settings.models_dir() == tmp_path
    # A folder the caller names (a models_dir argument, --models-dir) wins over both;
    # None or "" means "not named".
    named = tmp_path / "named"
    assert settings.models_dir(named) == named
    assert settings.models_dir(str(named)) == named
    assert settings.models_dir(None) == tmp_path
    assert settings.models_dir("") == tmp_path


def _save_many(root: str, prefix: str, barrier: Any) -> None:
    """Worker: wait for the other worker, then save 25 artifacts named ``<prefix>_<i>``."""
    barrier.wait(timeout=120)
    for i in range(25):
        save_artifact(Path(root), "rtoe", f"{prefix}_{i}", _state(i), **META)


def test_concurrent_saves_from_two_processes_all_land(models: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)  # both start saving together, so their updates interleave
    procs = [
        context.Process(target=_save_many, args=(str(models), prefix, barrier)) for prefix in "pq"
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert [proc.exitcode for proc in procs] == [0, 0]
    names = {m.name for m in list_artifacts(models, "rtoe")}
    assert names == {f"{p}_{i}" for p in "pq" for i in range(25)}
    for name in sorted(names):
        load_artifact(models, "rtoe", name)  # every file matches its entry


# --- signed manifests ---------------------------------------------------------------------------

KEY = "k" * 16 + "-a-clinic-secret-of-32-or-more-chars"
OTHER_KEY = "another-clinic-secret-at-least-32-characters"


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> str:
    """A signing key configured through the environment."""
    monkeypatch.delenv(settings.MODELS_KEY_FILE_ENV, raising=False)
    monkeypatch.setenv(settings.MODELS_KEY_ENV, KEY)
    return KEY


@pytest.fixture
def unkeyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.MODELS_KEY_ENV, raising=False)
    monkeypatch.delenv(settings.MODELS_KEY_FILE_ENV, raising=False)


def _swap_weights(models: Path, name: str) -> None:
    """What someone with write access to models/ does: other weights under the same name, and
    the manifest's sha256 and size updated to match them."""
    path = models / "rtoe" / f"{name}.pt"
    save_artifact(models.parent / "elsewhere", "rtoe", "other", _state(seed=99), **META)
    data = (models.parent / "elsewhere" / "rtoe" / "other.pt").read_bytes()
    path.write_bytes(data)
    manifest = _manifest(models)
    entry = manifest["artifacts"][f"rtoe/{name}.pt"]
    entry["sha256"], entry["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (models / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def test_with_a_key_replaced_weights_with_an_updated_sha256_are_refused(
        models: Path, keyed: str) -> None:
    save_artifact(models, "rtoe", "nsclc_glogd_tcp_0", _state(), **META)
    assert _manifest(models)["signature"]["alg"] == "hmac-sha256"  # a trainer with the key signs
    load_artifact(models, "rtoe", "nsclc_glogd_tcp_0")
    _swap_weights(models, "nsclc_glogd_tcp_0")
    for load in (lambda: load_artifact(models, "rtoe", "nsclc_glogd_tcp_0"),
                 lambda: list_artifacts(models)):
        with pytest.raises(ArtifactError) as info:
            load()
        message = str(info.value)
        assert message.startswith(f"{models / 'manifest.json'}: signature does not match")
        assert "weights replaced and their sha256 updated" in message
        assert "artds models sign" in message and "\n" not in message
    # A trainer holding the key does not sign someone else's change.
    with pytest.raises(ArtifactError, match="signature does not match"):
        save_artifact(models, "rtoe", "nsclc_glogd_tcp_1", _state(), **META)


def test_without_a_key_replaced_weights_are_served_and_the_app_is_warned(
        models: Path, unkeyed: None) -> None:
    """The documented trade-off: with no key, the sha256s are all there is."""
    save_artifact(models, "rtoe", "nsclc_glogd_tcp_0", _state(), **META)
    assert "signature" not in _manifest(models)
    _swap_weights(models, "nsclc_glogd_tcp_0")
    state, _ = load_artifact(models, "rtoe", "nsclc_glogd_tcp_0")
    assert torch.equal(state["0.weight"], _state(seed=99)["0.weight"])
    warning = registry.unsigned_warning()
    assert warning is not None and settings.MODELS_KEY_ENV in warning
    assert "replace weights and update their sha256" in warning


def test_an_unsigned_manifest_is_refused_with_a_key_until_signed(
        models: Path, monkeypatch: pytest.MonkeyPatch, unkeyed: None) -> None:
    save_artifact(models, "rtoe", "nsclc_glogd_tcp_0", _state(), **META)
    monkeypatch.setenv(settings.MODELS_KEY_ENV, KEY)
    assert registry.unsigned_warning() is None
    with pytest.raises(ArtifactError, match=r"manifest.json: not signed, and ARTDS_MODELS_KEY"):
        load_artifact(models, "rtoe", "nsclc_glogd_tcp_0")
    assert [m.file for m in registry.sign_manifest(models)] == ["rtoe/nsclc_glogd_tcp_0.pt"]
    load_artifact(models, "rtoe", "nsclc_glogd_tcp_0")
    assert [m.file for m in registry.verify_manifest(models)] == ["rtoe/nsclc_glogd_tcp_0.pt"]
    # Signed with one key, read with another: refused, saying so.
    monkeypatch.setenv(settings.MODELS_KEY_ENV, OTHER_KEY)
    with pytest.raises(ArtifactError, match="signed with another key"):
        load_artifact(models, "rtoe", "nsclc_glogd_tcp_0")


def test_signing_checks_every_file_first(models: Path, keyed: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.MODELS_KEY_ENV)
    meta = save_artifact(models, "rtoe", "nsclc_glogd_tcp_0", _state(), **META)
    (models / meta.file).write_bytes(b"not the recorded bytes")
    monkeypatch.setenv(settings.MODELS_KEY_ENV, KEY)
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        registry.sign_manifest(models)
    assert "signature" not in _manifest(models)


def test_the_key_file_must_lie_outside_the_models_folder(
        models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unkeyed: None) -> None:
    save_artifact(models, "rtoe", "nsclc_glogd_tcp_0", _state(), **META)
    inside = models / "key.txt"
    inside.write_text(KEY + "\n")
    monkeypatch.setenv(settings.MODELS_KEY_FILE_ENV, str(inside))
    with pytest.raises(ArtifactError, match="lies inside the models folder"):
        registry.sign_manifest(models)
    outside = tmp_path / "secrets" / "models.key"
    outside.parent.mkdir()
    outside.write_text(KEY + "\n")
    monkeypatch.setenv(settings.MODELS_KEY_FILE_ENV, str(outside))
    registry.sign_manifest(models)
    # The same key from the environment verifies it (the file's white space is not the key).
    monkeypatch.delenv(settings.MODELS_KEY_FILE_ENV)
    monkeypatch.setenv(settings.MODELS_KEY_ENV, KEY)
    load_artifact(models, "rtoe", "nsclc_glogd_tcp_0")


def test_models_key_settings_are_checked(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    monkeypatch.delenv(settings.MODELS_KEY_FILE_ENV, raising=False)
    monkeypatch.delenv(settings.MODELS_KEY_ENV, raising=False)
    assert settings.models_key() is None
    monkeypatch.setenv(settings.MODELS_KEY_ENV, "short")
    with pytest.raises(ValueError, match="at least 32 characters"):
        settings.models_key()
    monkeypatch.setenv(settings.MODELS_KEY_ENV, KEY)
    assert settings.models_key() == (KEY.encode(), None)
    monkeypatch.setenv(settings.MODELS_KEY_FILE_ENV, str(tmp_path / "k"))
    with pytest.raises(ValueError, match="not both"):
        settings.models_key()
    monkeypatch.delenv(settings.MODELS_KEY_ENV)
    with pytest.raises(ValueError, match="cannot read the key"):
        settings.models_key()

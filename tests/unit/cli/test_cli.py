"""The artds command line, run in-process through engine.cli.main."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.arclids.odm_eval import REGRET_POLICIES
from engine.cli import build_parser, main
from engine.core.protocols import PROTOCOL_NAMES
from engine.core.schema import read_cases

ROOT = Path(__file__).resolve().parents[3]
REF = ("--model", "reference")
"""The Foundation checks run on the virtual trial's reference model; learned models below."""
EXAMPLES = {name: ROOT / "assets" / "examples" / f"{name}_patients.csv" for name in PROTOCOL_NAMES}


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_recommend_json_for_both_example_files(name, capsys):
    assert (
        main(["recommend", "--protocol", name, "--input", str(EXAMPLES[name]), "--json", *REF]) == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["protocol"] == name
    n_rows = len(pd.read_csv(EXAMPLES[name]))
    assert len(payload["patients"]) == n_rows
    for patient in payload["patients"]:
        for key in (
            "patient_id",
            "doses_gy",
            "tcp",
            "ntcp",
            "reward",
            "recommended_dose_gy",
            "model",
        ):
            assert key in patient
        assert patient["model"] == "reference model (virtual trial ground truth)"
        assert len(patient["tcp"]) == len(patient["doses_gy"]) == len(payload["dose_grid_gy"])
        best = max(range(len(patient["reward"])), key=lambda i: (patient["reward"][i], -i))
        assert patient["recommended_dose_gy"] == patient["doses_gy"][best]


def test_recommend_plain_text(capsys):
    assert main(["recommend", "--protocol", "nsclc", "--input", str(EXAMPLES["nsclc"]), *REF]) == 0
    out = capsys.readouterr().out
    assert "EX-NSCLC-01" in out and "Gy/fx" in out
    # the reference truth has no interval, and says so instead of printing a fake one
    assert "(no interval: a single model)" in out and "interval 1" not in out
    assert "predicted reward (0–3, with goal bonuses): " in out
    assert "CAUTION: NTCP" in out  # EX-NSCLC-04's recommendation is toxic
    # the examples give EX-NSCLC-02 and -03 a proposal: compared, with the advice
    assert out.count("your proposal 2.8 Gy/fx vs the recommendation") == 2
    assert "P(recommendation better)" in out and "advised dose" in out
    assert "confiden" not in out.lower() and "q " not in out


def test_recommend_json_carries_intervals_caution_and_proposal(capsys):
    """The issue's JSON fields (#12): the interval per dose with its level (None for the
    reference), the best dose's interval, the caution and the proposal object."""
    assert main(["recommend", "--protocol", "nsclc", "--input", str(EXAMPLES["nsclc"]),
                 "--json", *REF]) == 0
    patients = {p["patient_id"]: p for p in json.loads(capsys.readouterr().out)["patients"]}
    for p in patients.values():
        for key in ("tcp_sd", "ntcp_sd", "tcp_lo", "tcp_hi", "ntcp_lo", "ntcp_hi"):
            assert len(p[key]) == len(p["doses_gy"]), key
        assert p["interval_level"] is None and p["tcp_lo"] == p["tcp"]  # the truth: no spread
        assert len(p["dose_interval_gy"]) == 2 and "recommended_reward" in p
    first = patients["EX-NSCLC-01"]
    assert first["proposal"] is None and first["caution"] is None
    assert "exceeds the default goal" in patients["EX-NSCLC-04"]["caution"]
    proposal = patients["EX-NSCLC-02"]["proposal"]
    assert set(proposal) == {
        "dose_gy", "tcp", "tcp_lo", "tcp_hi", "ntcp", "ntcp_lo", "ntcp_hi", "reward",
        "reward_lo", "reward_hi", "recommended_reward", "recommended_reward_lo",
        "recommended_reward_hi", "p_recommended_better", "advice", "advised_dose_gy",
        "threshold"}
    assert proposal["dose_gy"] == 2.8 and proposal["advice"] in ("keep", "change")
    assert proposal["advised_dose_gy"] == (patients["EX-NSCLC-02"]["recommended_dose_gy"]
                                           if proposal["advice"] == "change" else 2.8)


def test_recommendation_lines_state_every_interval_with_its_level():
    """The human output of a calibrated ensemble with a decision maker and a proposal: each
    interval names its level, the SEM and the q-value are labelled as what they are."""
    from dataclasses import replace

    from engine.arclids.outcomes import OutcomeCurves
    from engine.arclids.recommend import recommend
    from engine.cli.cases import recommendation_lines
    from engine.core.protocols import load_protocol

    protocol = load_protocol("nsclc")

    class Calibrated:
        name, label, version = "cal", "calibrated test curves", "t-cal"

        def predict_curves(self, cases, protocol):
            doses = protocol.dose_grid()
            g = np.linspace(0, 1, len(doses))[None, None, :]
            k = np.array([-1.0, 0.0, 1.0])[:, None, None]
            tcp = 1 / (1 + np.exp(-(g - 0.4 + 0.03 * k) / 0.15))
            ntcp = 1 / (1 + np.exp(-(g - 0.8 + 0.02 * k) / 0.12))
            t, n = tcp.mean(0), ntcp.mean(0)
            return OutcomeCurves(doses, tcp, ntcp, interval_level=0.8,
                                 tcp_lo=np.clip(t - 0.1, 0, 1), tcp_hi=np.clip(t + 0.1, 0, 1),
                                 ntcp_lo=np.clip(n - 0.05, 0, 1), ntcp_hi=np.clip(n + 0.05, 0, 1))

    cases = read_cases(EXAMPLES["nsclc"], protocol).iloc[[1]].reset_index(drop=True)
    rec = recommend(cases, protocol, Calibrated())[0]
    rec = replace(rec, recommender="odm", recommended_dose_sem_gy=0.02, q_value=2.71,
                  member_mean_dose_gy=rec.recommended_dose_gy, caution="NTCP too high")
    text = "\n".join(recommendation_lines(rec, protocol))
    lo, hi = rec.recommended_tcp_interval
    assert (f"TCP {100 * rec.recommended_tcp:.1f} % (80 % interval {100 * lo:.1f}–"
            f"{100 * hi:.1f} %)") in text
    assert "best dose: " in text and "(80 % interval, from the outcome models' uncertainty)" in text
    assert ("± 0.02 Gy/fx (SEM: the decision maker's fitting noise, not the outcome models' "
            "uncertainty); q-value 2.71 (the members' own predicted reward (0–3, with goal "
            "bonuses))") in text
    assert "CAUTION: NTCP too high" in text
    prop = rec.proposal
    assert f"predicted reward {prop['reward']:.2f} (80 % interval {prop['reward_lo']:.2f}–" in text
    assert f"P(recommendation better) {prop['p_recommended_better']:.2f}" in text
    assert "confiden" not in text.lower()


@pytest.mark.parametrize(
    ("file", "fragment"),
    [
        ("tests/data/bad/nsclc_cgy_dose.csv", "looks like cGy"),
        ("tests/data/bad/nsclc_missing_column.csv", "missing"),
        ("does/not/exist.csv", "no such file"),
    ],
)
def test_bad_input_exits_2_with_one_line(file, fragment, capsys):
    assert main(["recommend", "--protocol", "nsclc", "--input", str(ROOT / file), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0]


def test_cohort_writes_a_valid_trial(tmp_path, capsys):
    assert main(["cohort", "nsclc", "--out", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "nsclc_cohort.json").read_text())
    assert meta["n_cases"] == 117 and meta["n_complete_cases"] == 67
    table = pd.read_csv(tmp_path / "nsclc_cohort.csv")
    truth = pd.read_csv(tmp_path / "nsclc_truth.csv")
    assert len(table) == len(truth) == 117
    complete = table[truth["complete"]]
    # the complete cases are a valid clinic file with outcomes
    cases = read_cases(complete.to_csv(index=False), "nsclc", require_outcomes=True)
    assert len(cases) == 67
    assert meta["events_in_complete_cases"]["local_control"] == int(cases["local_control"].sum())


def test_report_writes_html(tmp_path, capsys):
    out = tmp_path / "report.html"
    assert (
        main(
            [
                "report",
                "--protocol",
                "hcc",
                "--input",
                str(EXAMPLES["hcc"]),
                "--out",
                str(out),
                *REF,
            ]
        )
        == 0
    )
    html = out.read_text(encoding="utf-8")
    assert "EX-HCC-01" in html and "reference model (virtual trial ground truth)" in html


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("serve", "cohort", "recommend", "report"):
        assert command in out


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub-)command of ``parser`` with its path of names, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def test_every_command_has_help(capsys):
    paths = [path for path, _ in _commands(build_parser())]
    assert len(paths) == 39  # artds, 13 commands, 25 sub-commands
    for path in paths:
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: {' '.join(('artds', *path))} ")


def test_shared_flags_read_the_same_in_every_command():
    """--models-dir, --protocol and --json are declared once (engine/cli/flags.py): the same
    default, choices and help wherever they appear."""
    seen: dict[str, set[tuple]] = {}
    users: dict[str, int] = {}
    for _, parser in _commands(build_parser()):
        for action in parser._actions:
            flag = next(iter(action.option_strings), None)
            if flag in ("--models-dir", "--protocol", "--json"):
                seen.setdefault(flag, set()).add(
                    (action.default, action.help, tuple(action.choices or ()), action.required))
                users[flag] = users.get(flag, 0) + 1
    assert users == {"--models-dir": 19, "--protocol": 8, "--json": 11}
    assert all(len(variants) == 1 for variants in seen.values()), seen


def test_recommend_json_has_the_decision_maker_fields(capsys):
    """With the reference model: the exact argmax, and why; the keys are always present."""
    assert main(["recommend", "--protocol", "nsclc", "--input", str(EXAMPLES["nsclc"]),
                 "--json", *REF]) == 0
    for patient in json.loads(capsys.readouterr().out)["patients"]:
        assert patient["recommender"] == "exact-argmax"
        assert patient["recommended_dose_sem_gy"] is None and patient["q_value"] is None
        assert patient["odm_version"] is None
        assert patient["recommended_dose_gy"] == patient["exact_argmax_dose_gy"]
        assert "no decision maker is trained" in patient["recommender_note"]


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_recommend_json_with_the_served_models(name, capsys):
    """Default model: the ODM when one is trained against the served outcome models, else the
    exact argmax with a note saying why (e.g. the outcome models were retrained since)."""
    from engine.arclids.serving import OdmUnavailable, load_served_model, odm_for_model
    from engine.platform.registry import ArtifactError

    try:
        odm = odm_for_model(name, load_served_model(name, "glogd"))
    except (ArtifactError, OdmUnavailable):
        odm = None
    code = main(["recommend", "--protocol", name, "--input", str(EXAMPLES[name]), "--json"])
    assert code == 0, capsys.readouterr().err  # the shipped outcome models must load
    for patient in json.loads(capsys.readouterr().out)["patients"]:
        grid = patient["doses_gy"]
        assert patient["exact_argmax_dose_gy"] in grid
        if odm is None:
            assert patient["recommender"] == "exact-argmax" and patient["recommender_note"]
            continue
        assert patient["recommender"] == "odm" and patient["odm_version"] == odm.version
        members = patient["member_doses_gy"]
        assert len(members) == len(odm.members) and set(members) <= set(grid)
        assert patient["recommended_dose_gy"] == pytest.approx(sum(members) / len(members),
                                                               abs=1e-6)
        sem = float(np.std(members, ddof=1) / np.sqrt(len(members)))
        assert patient["recommended_dose_sem_gy"] == pytest.approx(sem, abs=1e-6)
        assert patient["q_value"] is not None


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_evaluate_odm_json(name, capsys):
    code = main(["evaluate", "odm", "--protocol", name, "--json"])
    assert code == 0, capsys.readouterr().err  # the shipped evaluation must load
    summary = json.loads(capsys.readouterr().out)
    assert summary["protocol"] == name
    for arch in ("glogd", "single"):
        m = summary["architectures"][arch]
        for group in ("overall", "positive", "negative"):
            assert set(m["rmsd_gy"][group]) == {"mean", "sem"}
            assert set(m["self_evaluation"][group]) == {"good", "bad", "not_sure", "n"}
        for key in ("argmax_reward_ratio", "gain_captured", "stale", "odm_version",
                    "rtoe_version", "fresh_cohort"):
            assert key in m
        for cohort in (m, m["fresh_cohort"]):
            assert "gain_captured" in cohort and "argmax_reward_ratio" in cohort
            for policy in REGRET_POLICIES:
                assert set(cohort["regret"][policy]) >= {"dose_abs_error_gy", "true_reward_loss"}


def test_evaluate_odm_without_artifacts_exits_2(tmp_path, capsys):
    assert main(["evaluate", "odm", "--protocol", "hcc", "--models-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "artds train odm --protocol hcc" in err[0]


def test_an_id_with_control_characters_is_one_escaped_line(tmp_path, capsys) -> None:
    """A refused id with a line break and an escape sequence is reported on one line with the
    characters escaped (never echoed raw to the terminal)."""
    frame = pd.read_csv(EXAMPLES["nsclc"], dtype=str, keep_default_na=False).head(1)
    frame.loc[0, "patient_id"] = "P\n1\x1b[31m"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    assert main(["recommend", "--protocol", "nsclc", "--input", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n")
    assert "\x1b" not in err and "P\\n1\\x1b[31m" in err and "patient_id" in err


def test_a_model_trained_on_another_feature_graph_is_one_line(tmp_path, capsys) -> None:
    """Weights whose graph does not fit the protocol (hash valid, shape wrong) stop `recommend`
    and `report` with the serving catalogue's one-line reason naming the file and what is wrong
    with it, never a traceback."""
    import shutil

    from engine.platform import registry
    from engine.settings import MODELS_DIR

    shutil.copytree(MODELS_DIR / "rtoe", tmp_path / "rtoe")
    shutil.copy(MODELS_DIR / "manifest.json", tmp_path / "manifest.json")
    state, meta = registry.load_artifact(tmp_path, "rtoe", "nsclc_glogd_local_control_0")
    state = {**state, "graph.adjacency": state["graph.adjacency"][:, :-1].clone()}
    registry.save_artifact(tmp_path, "rtoe", meta.name, state, seed=meta.seed,
                           config=meta.config, data_hash=meta.data_hash,
                           cohort_version=meta.cohort_version, metrics=meta.metrics)
    for command in (["recommend"], ["report", "--out", str(tmp_path / "r.html")]):
        code = main([*command, "--protocol", "nsclc", "--input", str(EXAMPLES["nsclc"]),
                     "--models-dir", str(tmp_path)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert "another feature graph" in err[0] and "Traceback" not in err[0]
        assert "rtoe/nsclc_glogd_local_control_0.pt: does not fit this code" in err[0]
        assert "artds train rtoe --protocol nsclc" in err[0]
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize(("what", "damage"), [
    ("calibration", lambda payload: {k: v for k, v in payload.items() if k != "tcp"}),
    ("config", None),
])
def test_every_model_that_does_not_fit_is_one_line_naming_its_file(tmp_path, capsys, what,
                                                                   damage) -> None:
    """A calibration lacking its TCP part, a member whose config disagrees with its weights:
    intact files that do not fit this code stop `recommend` with one line naming the file, never
    a traceback."""
    import shutil

    from engine.platform import registry
    from engine.settings import MODELS_DIR

    shutil.copytree(MODELS_DIR / "rtoe", tmp_path / "rtoe")
    shutil.copy(MODELS_DIR / "manifest.json", tmp_path / "manifest.json")
    if what == "calibration":
        payload, meta = registry.load_json_artifact(tmp_path, "rtoe", "nsclc_glogd_calibration")
        registry.save_json_artifact(tmp_path, "rtoe", meta.name, damage(payload),
                                    seed=meta.seed, config=meta.config,
                                    data_hash=meta.data_hash,
                                    cohort_version=meta.cohort_version, metrics=meta.metrics)
        file = "rtoe/nsclc_glogd_calibration.json"
    else:
        state, meta = registry.load_artifact(tmp_path, "rtoe", "nsclc_glogd_rp2_3")
        config = {**meta.config, "hidden": 2 * meta.config["hidden"]}  # not its weights' width
        registry.save_artifact(tmp_path, "rtoe", meta.name, state, seed=meta.seed,
                               config=config, data_hash=meta.data_hash,
                               cohort_version=meta.cohort_version, metrics=meta.metrics)
        file = "rtoe/nsclc_glogd_rp2_3.pt"
    code = main(["recommend", "--protocol", "nsclc", "--input", str(EXAMPLES["nsclc"]),
                 "--models-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"{file}: does not fit this code" in err[0] and "Traceback" not in err[0]


def test_models_sign_and_verify(tmp_path, capsys, monkeypatch) -> None:
    """`artds models sign` signs a checked manifest; afterwards replaced weights with an updated
    sha256 stop `recommend` with one line; `verify` says what holds."""
    import hashlib
    import shutil

    from engine import settings
    from engine.settings import MODELS_DIR

    tmp_path = tmp_path / "models"
    shutil.copytree(MODELS_DIR, tmp_path)
    monkeypatch.delenv(settings.MODELS_KEY_FILE_ENV, raising=False)
    monkeypatch.delenv(settings.MODELS_KEY_ENV, raising=False)
    assert main(["models", "sign", "--models-dir", str(tmp_path)]) == 2
    assert "no signing key" in capsys.readouterr().err
    assert main(["models", "verify", "--models-dir", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "not signed: no key configured" in out.out and "ARTDS_MODELS_KEY" in out.err

    monkeypatch.setenv(settings.MODELS_KEY_ENV, "a-clinic-secret-of-at-least-32-characters")
    recommend = ["recommend", "--protocol", "nsclc", "--input", str(EXAMPLES["nsclc"]),
                 "--models-dir", str(tmp_path)]
    assert main(recommend) == 2  # the shipped manifest is not signed
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not signed" in err[0] and "artds models sign" in err[0]
    assert main(["models", "sign", "--models-dir", str(tmp_path)]) == 0
    assert "manifest signed" in capsys.readouterr().out
    assert main(["models", "verify", "--models-dir", str(tmp_path)]) == 0
    assert "signature valid" in capsys.readouterr().out
    assert main([*recommend, "--json"]) == 0
    capsys.readouterr()

    # Replace one member's weights by another's and update the sha256, as an intruder would.
    name = "rtoe/nsclc_glogd_rp2_0.pt"
    data = (tmp_path / "rtoe/nsclc_glogd_rp2_1.pt").read_bytes()
    (tmp_path / name).write_bytes(data)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["artifacts"][name]["sha256"] = hashlib.sha256(data).hexdigest()
    manifest["artifacts"][name]["bytes"] = len(data)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    for command in (recommend, ["models", "verify", "--models-dir", str(tmp_path)]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "signature does not match" in err[0], err


def test_recommend_carries_the_recommenders_fresh_cohort_track_record(capsys):
    """Beside the served recommendation, how its policy did on a fresh virtual cohort against
    the clinicians' rule and one dose for everyone (from the saved evaluation); the reference
    truth was never evaluated as a recommender, and the output says so."""
    assert main(["recommend", "--protocol", "nsclc", "--input", str(EXAMPLES["nsclc"]),
                 "--json"]) == 0
    record = json.loads(capsys.readouterr().out)["track_record"]
    assert record["n_cases"] >= 1000 and record["recommender"] == "odm"
    for key in ("recommendation_loss", "advised_loss", "clinicians_loss", "constant_loss"):
        assert 0.0 <= record[key] <= 3.0, key
    assert main(["recommend", "--protocol", "nsclc", "--input", str(EXAMPLES["nsclc"])]) == 0
    out = capsys.readouterr().out
    assert "Track record on a fresh virtual cohort" in out and "did best there" in out
    assert re.search(r"Brier score on a fresh virtual cohort .*TCP [\d.]+ vs [\d.]+ "
                     r"\((better|worse|about the same)\)", out)
    assert main(["recommend", "--protocol", "nsclc", "--input", str(EXAMPLES["nsclc"]), *REF]) == 0
    assert "how its recommendations compare with the clinicians' rule is not known" in (
        capsys.readouterr().out)

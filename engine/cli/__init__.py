"""``artds`` command line: serve the app, manage users and the database, write virtual trials,
recommend doses, write reports, plan an adaptive fractionation schedule, predict
radiosensitivity (SF2) from gene expression.

Only parses arguments and wires engine calls together. Exit codes: 0 success, 2 bad input
(one line on stderr naming the problem).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from engine import settings
from engine.core.protocols import PROTOCOL_NAMES, load_protocol

__all__ = ["main"]


class InputError(Exception):
    """A user-facing input problem: printed as one line, exit code 2."""


def _read_input(path: str, protocol_name: str):
    from engine.core.schema import read_cases
    from engine.core.tabular import SchemaError

    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return read_cases(file, protocol_name)
    except SchemaError as err:
        raise InputError(f"{file.name}: {err}") from err


def _outcome_model(protocol_name: str, model: str, models_dir: str | None):
    """The outcome model asked for (a learned ensemble from models/ or the reference truth), from
    the serving catalogue; one that does not load is an input error with the catalogue's reason."""
    from engine.arclids.serving import ModelUnavailable, load_outcome_model

    try:
        served = load_outcome_model(protocol_name, model, models_dir)
    except ModelUnavailable as err:
        raise InputError(f"{err} (--model reference uses the virtual trial's truth)") from err
    for warning in getattr(served, "warnings", ()):
        print(f"artds: warning: {warning}", file=sys.stderr)
    return served


def _decision_maker(protocol_name: str, model, models_dir: str | None):
    """(the ODM ensemble serving ``model``, None) or (None, why not): never an error (the serving
    catalogue's policy, as in the app)."""
    from engine.arclids.serving import decision_maker

    return decision_maker(protocol_name, model, models_dir)


def _recommendations(args: argparse.Namespace):
    from engine.arclids.recommend import recommend

    protocol = load_protocol(args.protocol)
    cases = _read_input(args.input, args.protocol)
    model = _outcome_model(args.protocol, args.model, args.models_dir)
    odm, note = _decision_maker(args.protocol, model, args.models_dir)
    return protocol, cases, recommend(cases, protocol, model, odm, odm_note=note)


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def cmd_recommend(args: argparse.Namespace) -> int:
    protocol, _, recs = _recommendations(args)
    if args.json:
        payload = {
            "protocol": protocol.name,
            "dose_grid_gy": list(protocol.dose_grid_gy),
            "patients": [_rounded(r.to_dict()) for r in recs],
        }
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return 0
    print(f"{protocol.label} — {len(recs)} case(s); model: {recs[0].model if recs else '-'}")
    if recs and recs[0].recommender_note:
        print(f"  note: {recs[0].recommender_note}")
    for r in recs:
        goal = protocol.goal_met_text(r.recommended_goal)
        if r.recommended_dose_sem_gy is not None:
            dose = (f"{r.recommended_dose_gy:.2f} ± {r.recommended_dose_sem_gy:.2f} Gy/fraction "
                    f"(q {r.q_value:.2f}; exact argmax {r.exact_argmax_dose_gy:g})")
        else:
            dose = f"{r.recommended_dose_gy:.1f} Gy/fraction"
        print(f"  {r.label}: {dose} "
              f"(TCP {r.recommended_tcp:.1%}, NTCP {r.recommended_ntcp:.1%}, {goal})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from engine.arclids.cohort import population_table
    from engine.platform.report import render_report

    protocol, cases, recs = _recommendations(args)
    notes = None
    if "note" in cases.columns:
        from engine.core.schema import case_labels

        notes = {
            label: str(note) for label, note in zip(case_labels(cases), cases["note"], strict=True)
            if isinstance(note, str) and note
        }
    html = render_report(
        recs, cases, protocol, population=population_table(protocol.name), notes=notes
    )
    out = Path(args.out)
    out.write_text(html, encoding="utf-8")
    print(f"wrote {out} ({len(recs)} case(s))")
    return 0


def cmd_cohort(args: argparse.Namespace) -> int:
    from engine.arclids.cohort import DEFAULT_TRIAL_SEED, generate_cohort, write_cases_csv

    seed = DEFAULT_TRIAL_SEED if args.seed is None else args.seed
    cohort = generate_cohort(args.protocol, seed=seed, n_patients=args.n_patients)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = cohort.protocol.name
    cases_path = write_cases_csv(cohort.table, cohort.protocol, out / f"{name}_cohort.csv")
    ids = list(cohort.protocol.id_columns)
    truth = cohort.table[[*ids, "complete"]].join(cohort.truth)
    truth.to_csv(out / f"{name}_truth.csv", index=False, float_format="%.6g")
    complete = cohort.complete_table
    meta = {
        "protocol": name,
        "seed": seed,
        "trial_version": cohort.version,
        "n_cases": len(cohort.table),
        "n_patients": int(cohort.table["patient_id"].nunique()),
        "n_complete_cases": len(complete),
        "events_in_complete_cases": {
            o: int(complete[o].sum()) for o in cohort.protocol.outcome_names
        },
        "note": "virtual trial with known ground truth; not clinical data",
    }
    (out / f"{name}_cohort.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {cases_path}, {name}_truth.csv and {name}_cohort.json to {out}")
    return 0


def _executor(args: argparse.Namespace):
    """The executor asked for by ``--executor``, ``--address`` and ``--workers``."""
    from engine.platform.executor import make_executor

    try:
        return make_executor(args.executor, address=args.address, n_workers=args.workers)
    except ValueError as err:
        raise InputError(str(err)) from err


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from engine.arclids.rtoe_train import train_rtoe
    from engine.platform.executor import text_progress

    torch.set_num_threads(1)
    executor = _executor(args)
    with executor:
        payload = train_rtoe(
            args.protocol,
            executor,
            grid_name=args.grid,
            models_dir=args.models_dir,
            learning_curve=not args.no_learning_curve,
            seed=args.seed,
            select_by=args.select_by,
            progress_factory=text_progress,
            log=lambda msg: print(msg, file=sys.stderr),
        )
    for arch, per_outcome in payload["architectures"].items():
        for outcome, res in per_outcome.items():
            cv = res["cv_auroc_mean"]
            cv_text = "n/a" if cv is None else f"{cv:.3f} ± {res['cv_auroc_sd']:.3f}"
            print(
                f"{args.protocol} {arch:8s} {outcome:15s} CV AUROC {cv_text}; fresh cohort "
                f"{res['auroc_vs_truth']:.3f} (ceiling {res['auroc_bayes_ceiling']:.3f})"
            )
    return 0


def cmd_train_gan(args: argparse.Namespace) -> int:
    import torch

    from engine.arclids.odm_train import train_gan

    torch.set_num_threads(1)
    checks = train_gan(args.protocol, budget=args.budget, models_dir=args.models_dir,
                       seed=args.seed, log=lambda msg: print(msg, file=sys.stderr))
    print(f"{args.protocol} GAN: mean per-feature JSD vs the training trial "
          f"{checks['jsd_vs_training_mean']:.3f}, vs a 10,000-patient virtual population "
          f"{checks['jsd_vs_population_mean']:.3f} (training trial vs population: "
          f"{checks['jsd_training_vs_population_mean']:.3f})")
    return 0


def cmd_train_odm(args: argparse.Namespace) -> int:
    import torch

    from engine.arclids.odm_train import train_odm
    from engine.platform.executor import text_progress
    from engine.platform.registry import ArtifactError

    torch.set_num_threads(1)
    executor = _executor(args)
    with executor:
        try:
            payload = train_odm(
                args.protocol, executor, budget=args.budget, archs=args.arch,
                models_dir=args.models_dir, seed=args.seed, with_gan=not args.reuse_gan,
                progress_factory=text_progress, log=lambda msg: print(msg, file=sys.stderr),
            )
        except ArtifactError as err:
            raise InputError(str(err)) from err
    print(f"{args.protocol}: wall seconds {payload['wall_seconds']}")
    for arch, m in payload["architectures"].items():
        t = m["trial"]
        print(f"{args.protocol} {arch}+DDQN: RMSD vs clinic {t['rmsd_gy']['overall']['mean']:.2f} "
              f"Gy/fx; argmax_reward_ratio {t['argmax_reward_ratio']:.3f}; gain_captured "
              f"{_fmt(t['gain_captured'])}; true-reward loss vs oracle "
              f"{t['regret']['odm']['true_reward_loss']:.3f} (exact argmax "
              f"{t['regret']['exact_argmax']['true_reward_loss']:.3f}, historic "
              f"{t['regret']['historic']['true_reward_loss']:.3f})")
    return 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def cmd_evaluate_odm(args: argparse.Namespace) -> int:
    from engine.arclids.odm_eval import summarise_odm_evaluation
    from engine.arclids.serving import load_odm_evaluation, served_rtoe_versions
    from engine.platform.registry import ArtifactError

    try:
        payload, meta = load_odm_evaluation(args.protocol, args.models_dir)
    except ArtifactError as err:
        raise InputError(str(err)) from err
    summary = summarise_odm_evaluation(
        payload, meta, served_rtoe_versions(args.protocol, args.models_dir)
    )
    if args.json:
        print(json.dumps(_rounded(summary), indent=2))
        return 0
    for arch, m in summary["architectures"].items():
        rm = m["rmsd_gy"]["overall"]
        se = m["self_evaluation"]["overall"]
        reg = m["regret"]
        print(f"{arch}+DDQN ({m['odm_version']}){' STALE: ' + m['note'] if m['stale'] else ''}")
        print(f"  RMSD vs clinical decisions {rm['mean']:.2f} ± {rm['sem'] or 0:.2f} Gy/fx; "
              f"self-evaluation good {se['good']:.0%}, bad {se['bad']:.0%}, "
              f"not sure {se['not_sure']:.0%}")
        print(f"  argmax_reward_ratio {m['argmax_reward_ratio']:.3f}; gain_captured "
              f"{_fmt(m['gain_captured'])}")
        print(f"  vs oracle: |dose error| ODM {reg['odm']['dose_abs_error_gy']:.2f}, exact argmax "
              f"{reg['exact_argmax']['dose_abs_error_gy']:.2f}, historic "
              f"{reg['historic']['dose_abs_error_gy']:.2f} Gy/fx; true-reward loss "
              f"{reg['odm']['true_reward_loss']:.3f} / "
              f"{reg['exact_argmax']['true_reward_loss']:.3f} / "
              f"{reg['historic']['true_reward_loss']:.3f}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.arclids.rtoe_eval import evaluation_summary
    from engine.platform.registry import ArtifactError

    try:
        summary = evaluation_summary(args.protocol, args.models_dir)
    except ArtifactError as err:
        raise InputError(str(err)) from err
    if args.json:
        print(json.dumps(_rounded(summary), indent=2))
        return 0
    for arch, per_outcome in summary["architectures"].items():
        for key, res in per_outcome.items():
            cv = res["cv_auroc_mean"]
            cv_text = "n/a" if cv is None else f"{cv:.3f}"
            print(
                f"{arch:8s} {key:4s} CV AUROC {cv_text}; vs truth {res['auroc_vs_truth']:.3f} "
                f"(ceiling {res['auroc_bayes_ceiling']:.3f}); monotonicity violations "
                f"{res['monotonicity_violation_rate']:.1%}"
            )
    return 0


def _open_store():
    from engine.platform.store import Store

    store = Store()
    try:
        store.upgrade()
    except Exception as err:  # unreachable server, bad URL, permissions: one line, exit 2
        raise InputError(f"database {store!r} could not be opened or migrated "
                         f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
                         ) from err
    return store


def _read_password(args: argparse.Namespace, *, env: str, prompt: str) -> str:
    """A new password from stdin (``--password-stdin``), the environment, or a prompt (twice)."""
    import getpass

    if getattr(args, "password_stdin", False):
        return sys.stdin.readline().rstrip("\r\n")
    if settings.env_password(env):
        return settings.env_password(env)
    if not sys.stdin.isatty():
        raise InputError(f"no password given: use --password-stdin, set {env}, or run in a "
                         "terminal to be asked")
    first = getpass.getpass(f"{prompt}: ")
    if getpass.getpass(f"{prompt} (again): ") != first:
        raise InputError("the two passwords differ")
    return first


def ensure_first_admin(store) -> None:
    """With no user in the database, create the first admin from ``$ARTDS_ADMIN_USER`` and
    ``$ARTDS_ADMIN_PASSWORD``, or from what the operator types; there is no default password."""

    from engine.platform.accounts import create_user

    if store.count_users() > 0:
        return
    username = settings.env_text(settings.ADMIN_USER_ENV)
    if not username or not settings.env_password(settings.ADMIN_PASSWORD_ENV):
        if not sys.stdin.isatty():
            raise InputError(
                "no user exists yet: set ARTDS_ADMIN_USER and ARTDS_ADMIN_PASSWORD, or create "
                "one with `artds user add --username NAME --role admin`")
        print("No user exists yet: create the first administrator.", file=sys.stderr)
        username = username or input("Administrator user name: ").strip()
    password = _read_password(argparse.Namespace(), env=settings.ADMIN_PASSWORD_ENV,
                              prompt=f"Password for {username}")
    try:
        create_user(store, username, password, "admin", created_by="setup")
    except ValueError as err:
        raise InputError(str(err)) from err
    print(f"created administrator {username}", file=sys.stderr)


def _plan_config(args: argparse.Namespace):
    from dataclasses import replace

    from engine.planner import BiologyRanges, CourseConfig, DQNConfig, PlanConfig
    from engine.planner.config import preference_weights
    from engine.planner.model import OarBiology

    try:
        reward = replace(preference_weights(args.priority), mode=args.reward_mode)
        cfg = PlanConfig(
            biology=BiologyRanges(patient_alpha_per_gy=args.alpha_per_gy),
            oar=OarBiology(sparing_gamma=args.gamma),
            course=CourseConfig(fractions_per_decision=args.fractions_per_decision),
            reward=reward,
            dqn=replace(DQNConfig(), **({"n_episodes": args.episodes} if args.episodes else {})),
            priority=args.priority,
            n_eval_scenarios=args.scenarios,
            seed=args.seed,
            beamlet=not args.no_beamlet,
        )
        return cfg.validate()
    except ValueError as err:
        raise InputError(str(err)) from err


def _finite(value: object) -> object:
    """NaN/inf → None (strict JSON), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def cmd_plan(args: argparse.Namespace) -> int:
    from engine.planner import run_plan
    from engine.platform.executor import text_progress

    cfg = _plan_config(args)
    bar = text_progress("planner") if not args.quiet else None
    last = [-1]

    def progress(share: float, message: str) -> None:
        if bar is not None and int(share * 100) != last[0]:
            last[0] = int(share * 100)
            bar(last[0], 100)

    p = run_plan(cfg, progress=progress).payload
    if args.json:
        print(json.dumps(_finite(_rounded(p)), indent=2, ensure_ascii=False, allow_nan=False))
        return 0
    ref, art = p["reference"], p["art"]
    weeks = " ".join(f"{d:.2f}" for d in p["weekly_dose_gy"])
    captured = p["oracle_gain_captured"]
    print(f"ART weekly dose per fraction (Gy): {weeks}; adaptation weeks: "
          f"{', '.join(map(str, p['adaptation_weeks'])) or 'none'}")
    for name, s in (("reference", ref), ("ART", art)):
        print(f"  {name:9s} tumour BED {s['tumour_bed_mean']:.2f} Gy (IQR "
              f"{s['tumour_bed_iqr']:.2f}), OAR BED {s['oar_bed_mean']:.2f} Gy, "
              f"P(SF<1e-4) {s['p_sf_below_1e4']:.2f}")
    print(f"  oracle ratio {p['oracle_ratio']:.4f}; gain captured "
          f"{'undefined' if captured is None else f'{captured:.3f}'}; "
          f"trained in {p['train_seconds']:.1f} s")
    for note in p["notes"]:
        print(f"  note: {note}")
    return 0




def cmd_train_sf2(args: argparse.Namespace) -> int:
    import torch

    from engine.platform.executor import text_progress
    from engine.sf2.model import ServedConfig, train_sf2

    torch.set_num_threads(1)
    config = ServedConfig(seed=args.seed, n_iterations=args.iterations,
                          n_members=args.members)
    executor = _executor(args)
    with executor:
        summary = train_sf2(args.models_dir, config, executor,
                            log=lambda msg: print(msg, file=sys.stderr),
                            progress=text_progress("sf2 members"))
    print(f"sf2: {len(summary['members'])} members on {summary['n_lines']} lines "
          f"({summary['data_version']}); genes: {', '.join(summary['genes'])}")
    from engine.settings import models_dir

    root = Path(args.models_dir) if args.models_dir else models_dir()
    for path in summary["files"]:
        print(f"  wrote {root / path}")
    return 0


def cmd_sf2_evaluate(args: argparse.Namespace) -> int:
    import torch

    from engine.platform.executor import text_progress
    from engine.sf2.evaluate import EvaluationConfig, evaluate, text_table

    torch.set_num_threads(1)
    settings = tuple(args.settings.split(","))
    from engine.sf2.data import SETTINGS

    bad = [s for s in settings if s not in SETTINGS]
    if bad:
        raise InputError(f"--settings {','.join(bad)}: accepted are {', '.join(SETTINGS)}")
    repeats = args.repeats if args.repeats is not None else (5 if args.full else 3)
    iterations = args.iterations if args.iterations is not None else (3000 if args.full
                                                                       else 1000)
    if repeats < 2 or iterations < 1:
        raise InputError(f"--repeats {repeats} must be at least 2 and --iterations "
                         f"{iterations} at least 1")
    config = EvaluationConfig(settings=settings, n_repeats=repeats, n_iterations=iterations,
                              seed=args.seed)
    executor = _executor(args)
    with executor:
        result = evaluate(config, executor,
                          progress=None if args.json else text_progress("sf2 evaluation"))
    if args.save:
        from engine.settings import models_dir
        from engine.sf2.evaluate import save_evaluation

        meta = save_evaluation(result, args.models_dir)
        root = Path(args.models_dir) if args.models_dir else models_dir()
        print(f"saved {root / meta.file}", file=sys.stderr)
    if args.json:
        print(json.dumps(_rounded(result), indent=2, allow_nan=False))
        return 0
    print(text_table(result))
    return 0


def cmd_sf2_predict(args: argparse.Namespace) -> int:
    from engine.core.tabular import SchemaError
    from engine.platform.registry import ArtifactError
    from engine.sf2.data import read_expression_upload
    from engine.sf2.model import load_served_sf2

    file = Path(args.input)
    if not file.is_file():
        raise InputError(f"{args.input}: no such file")
    if args.n_fractions < 1 or not 0 < args.dose_per_fraction_gy <= 30:
        raise InputError(f"--n-fractions {args.n_fractions} must be at least 1 and "
                         f"--dose-per-fraction-gy {args.dose_per_fraction_gy} in (0, 30] Gy")
    try:
        model = load_served_sf2(args.models_dir)
    except ArtifactError as err:
        raise InputError(f"{err}") from err
    try:
        upload = read_expression_upload(
            file, required_genes=model.genes, panel_genes=_panel_genes(),
            tissues=sorted(set(model.reference["tissue"])))
    except SchemaError as err:
        raise InputError(f"{file.name}: {err}") from err
    preds = model.predict_upload(upload, gard_n_fractions=args.n_fractions,
                                 gard_dose_per_fraction_gy=args.dose_per_fraction_gy,
                                 influence_method=args.influence) if len(
        upload.expression.columns) else []
    if not preds:  # an RSI-only file: no panel genes for the model
        from engine.sf2.rsi import gard, rsi, rsi_alpha_per_gy

        values = rsi(upload.raw_rsi)
        samples = [{"sample_id": sid, "sf2": None, "note": "no panel genes: RSI only",
                    "rsi": float(r), "rsi_alpha_per_gy": float(rsi_alpha_per_gy(r)),
                    "gard": float(gard(r, args.n_fractions, args.dose_per_fraction_gy))}
                   for sid, r in zip(upload.samples.index, values, strict=True)]
    else:
        samples = [p.to_dict(args.top) for p in preds]
    payload = {"model": model.label, "model_version": model.version,
               "data_version": model.data_version, "genes": model.genes,
               "influence": args.influence, "samples": samples}
    if args.json:
        print(json.dumps(_rounded(payload), indent=2, ensure_ascii=False, allow_nan=False))
        return 0
    print(f"{model.label}, version {model.version}")
    for s in samples:
        if s.get("sf2") is None:
            print(f"  {s['sample_id']}: RSI {s['rsi']:.3f}, GARD {s['gard']:.1f}")
            continue
        line = (f"  {s['sample_id']}: SF2 {s['sf2']:.3f} ± {s['sf2_sd']:.3f}, "
                f"α {s['alpha_per_gy']:.3f} Gy⁻¹ (α/β {s['alpha_beta_gy']:g} Gy); adapted on "
                f"{s['adapted_on']['subgroup']}")
        if s.get("rsi") is not None:
            line += f"; RSI {s['rsi']:.3f}, GARD {s['gard']:.1f}"
        print(line)
    return 0


def _panel_genes() -> list[str]:
    from engine.sf2.data import load_panel

    return load_panel().genes


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    store = _open_store()
    ensure_first_admin(store)
    store.dispose()
    uvicorn.run("app.app:app", host=args.host, port=args.port, log_level="info",
                proxy_headers=args.proxy_headers, forwarded_allow_ips=args.forwarded_allow_ips)
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    from engine.platform.accounts import change_password, check_username, create_user
    from engine.platform.store import StoreError

    store = _open_store()
    try:
        if args.action == "add":
            check_username(args.username)
            password = _read_password(args, env=settings.PASSWORD_ENV,
                                      prompt=f"Password for {args.username}")
            user = create_user(store, args.username, password, args.role, created_by="cli")
            print(f"created {user.role} {user.username}")
        elif args.action == "list":
            for u in store.users():
                state = "active" if u.active else "disabled"
                print(f"{u.username}\t{u.role}\t{state}\t"
                      f"{u.created_at:%Y-%m-%d %H:%M} UTC\t{u.created_by}")
        elif args.action == "passwd":
            password = _read_password(args, env=settings.PASSWORD_ENV,
                                      prompt=f"New password for {args.username}")
            change_password(store, args.username, password, by="cli")
            print(f"changed the password of {args.username}")
        elif args.action == "role":
            store.set_role(args.username, args.role, by="cli")
            print(f"{args.username} is now {args.role}")
        else:  # enable / disable
            store.set_active(args.username, args.action == "enable", by="cli")
            print(f"{args.username} {args.action}d")
    except (ValueError, StoreError) as err:
        raise InputError(str(err)) from err
    finally:
        store.dispose()
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    store = _open_store()  # upgrades
    print(f"{store!r} at revision {store.current_revision()}")
    store.dispose()
    return 0


def _add_sf2_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--members", type=int, default=5, help="ensemble members (default 5)")
    p.add_argument("--iterations", type=int, default=3000,
                   help="meta-iterations per member (default 3000, the paper's)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--executor", default="local", choices=("serial", "local", "ray"),
                   help="where members train (default: a local process pool)")
    p.add_argument("--address", default=None, help="Ray cluster address (with --executor ray)")
    p.add_argument("--workers", type=int, default=None, help="local pool size (default: cores)")
    p.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
    p.set_defaults(func=cmd_train_sf2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="artds", description="Decision support for response-adaptive radiotherapy."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the web app")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--proxy-headers", action="store_true",
                       help="trust X-Forwarded-For/-Proto from --forwarded-allow-ips (behind a "
                       "load balancer)")
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1",
                       help="proxies trusted for X-Forwarded-* headers (default 127.0.0.1)")
    serve.set_defaults(func=cmd_serve)

    from engine.platform.store import ROLES

    user = sub.add_parser("user", help="manage users (the database of $ARTDS_DATABASE_URL)")
    user_sub = user.add_subparsers(dest="action", required=True)
    add = user_sub.add_parser("add", help="create a user (password from a prompt, "
                              "--password-stdin or $ARTDS_PASSWORD)")
    add.add_argument("--username", required=True)
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    user_sub.add_parser("list", help="list users with role and state")
    passwd = user_sub.add_parser("passwd", help="set a new password")
    passwd.add_argument("--username", required=True)
    passwd.add_argument("--password-stdin", action="store_true")
    role = user_sub.add_parser("role", help="change a user's role")
    role.add_argument("--username", required=True)
    role.add_argument("--role", required=True, choices=ROLES)
    for action in ("enable", "disable"):
        p = user_sub.add_parser(action, help=f"{action} a user (disable also ends sessions)")
        p.add_argument("--username", required=True)
    user.set_defaults(func=cmd_user)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="action", required=True)
    db_sub.add_parser("upgrade", help="create or migrate the schema to the newest revision")
    db.set_defaults(func=cmd_db)

    cohort = sub.add_parser("cohort", help="write a virtual trial with its ground truth")
    cohort.add_argument("protocol", choices=PROTOCOL_NAMES)
    cohort.add_argument("--out", required=True, help="output folder")
    cohort.add_argument(
        "--seed", type=int, default=None, help="trial seed (default: the default trial)"
    )
    cohort.add_argument(
        "--n-patients", type=int, default=None, help="patients (default: trial size)"
    )
    cohort.set_defaults(func=cmd_cohort)

    train = sub.add_parser("train", help="train models and save them under models/")
    train_sub = train.add_subparsers(dest="family", required=True)
    rtoe = train_sub.add_parser("rtoe", help="outcome estimators: grid search, CV, ensembles")
    rtoe.add_argument("--protocol", required=True, choices=PROTOCOL_NAMES)
    rtoe.add_argument(
        "--grid",
        default="default",
        choices=("default", "paper", "tiny"),
        help="hyper-parameter grid (default: sized for a 2-core laptop)",
    )
    rtoe.add_argument(
        "--executor",
        default="local",
        choices=("serial", "local", "ray"),
        help="where jobs run: in-process, a local process pool, or a Ray cluster",
    )
    rtoe.add_argument("--address", default=None, help="Ray cluster address (with --executor ray)")
    rtoe.add_argument("--workers", type=int, default=None, help="local pool size (default: cores)")
    rtoe.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    rtoe.add_argument(
        "--select-by",
        default="auroc",
        choices=("auroc", "log_loss"),
        help="grid-search criterion: mean CV AUROC (default, the paper's; log-loss where no "
        "split is scorable) or mean CV log-loss",
    )
    rtoe.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
    rtoe.add_argument(
        "--no-learning-curve",
        action="store_true",
        help="skip the 67/200/1000-patient learning curve",
    )
    rtoe.set_defaults(func=cmd_train)

    sf2_train = train_sub.add_parser(
        "sf2", help="SF2 from gene expression: the served REPTILE ensemble (models/sf2/)")
    _add_sf2_train_args(sf2_train)

    gan = train_sub.add_parser("gan", help="WGAN-GP synthetic patients and their JSD checks")
    gan.add_argument("--protocol", required=True, choices=PROTOCOL_NAMES)
    gan.add_argument("--budget", default="default", choices=("default", "paper", "tiny"),
                     help="training budget (the GAN is the paper's in default and paper)")
    gan.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    gan.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
    gan.set_defaults(func=cmd_train_gan)

    odm = train_sub.add_parser(
        "odm", help="GAN, then Double-DQN decision makers on the served outcome models, evaluated"
    )
    odm.add_argument("--protocol", required=True, choices=PROTOCOL_NAMES)
    odm.add_argument("--budget", default="default",
                     choices=("default", "long", "paper", "paper-100", "tiny"),
                     help="default: 100 ODM epochs, resampled planning on the ensemble-mean "
                          "ARTE; long: the same for 300 epochs; paper: as printed (300 "
                          "epochs); paper-100: the paper's method "
                          "at 100 epochs; tiny: smoke test")
    odm.add_argument("--arch", nargs="+", default=["glogd", "single"],
                     choices=("glogd", "single"), help="outcome architectures (default both)")
    odm.add_argument("--reuse-gan", action="store_true",
                     help="plan on the saved GAN instead of retraining it first")
    odm.add_argument("--executor", default="local", choices=("serial", "local", "ray"),
                     help="where member jobs run: in-process, a local process pool, or Ray")
    odm.add_argument("--address", default=None, help="Ray cluster address (with --executor ray)")
    odm.add_argument("--workers", type=int, default=None, help="local pool size (default: cores)")
    odm.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    odm.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
    odm.set_defaults(func=cmd_train_odm)

    evaluate = sub.add_parser("evaluate", help="print the saved evaluation of trained models")
    eval_sub = evaluate.add_subparsers(dest="family", required=True)
    ev = eval_sub.add_parser("rtoe", help="outcome estimators per architecture and outcome")
    ev.add_argument("--protocol", required=True, choices=PROTOCOL_NAMES)
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
    ev.set_defaults(func=cmd_evaluate)
    ev_odm = eval_sub.add_parser(
        "odm", help="decision makers: vs clinical decisions, vs the exact argmax, vs the oracle"
    )
    ev_odm.add_argument("--protocol", required=True, choices=PROTOCOL_NAMES)
    ev_odm.add_argument("--json", action="store_true", help="print one JSON object")
    ev_odm.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
    ev_odm.set_defaults(func=cmd_evaluate_odm)

    plan = sub.add_parser(
        "plan", help="train the RL fractionation planner and compare ART with the reference"
    )
    plan.add_argument("--json", action="store_true", help="print one JSON object")
    plan.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    plan.add_argument("--episodes", type=int, default=None,
                      help="training episodes (default: DQNConfig.n_episodes)")
    plan.add_argument("--scenarios", type=int, default=500,
                      help="evaluation scenarios, also scored by the oracle (default 500)")
    plan.add_argument("--gamma", type=float, default=0.7,
                      help="OAR sparing factor γ, mean OAR dose / tumour dose (default 0.7)")
    plan.add_argument("--priority", choices=("tumour", "oar_sparing"), default="tumour",
                      help="planner preference (default tumour)")
    plan.add_argument("--alpha-per-gy", type=float, default=None,
                      help="the patient's α (Gy⁻¹), e.g. from a predicted SF2; default: "
                      "uncertain, 0.20–0.365")
    plan.add_argument("--reward-mode", choices=("terminal", "cumulative"), default="terminal",
                      help="pay reward (15) as its change per step (default) or as printed")
    plan.add_argument("--fractions-per-decision", type=int, choices=(1, 5), default=5,
                      help="decide weekly (5, default) or every fraction (1)")
    plan.add_argument("--no-beamlet", action="store_true", help="skip the phantom beamlet LP")
    plan.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    plan.set_defaults(func=cmd_plan)
    sf2 = sub.add_parser("sf2", help="radiosensitivity (SF2) from gene expression")
    sf2_sub = sf2.add_subparsers(dest="sf2_command", required=True)
    pred = sf2_sub.add_parser("predict", help="predict SF2, α, gene influence, RSI and GARD")
    pred.add_argument("--input", required=True, help="CSV in the format of docs/sf2.md")
    pred.add_argument("--json", action="store_true", help="print one JSON object")
    pred.add_argument("--top", type=int, default=10, help="genes listed per sample (default 10)")
    pred.add_argument("--influence", default="gradient", choices=("gradient", "gradient_x_input"),
                      help="gene influence: gradient (SF2 per +1 sd) or gradient x input")
    pred.add_argument("--n-fractions", type=int, default=30, help="GARD regimen (default 30)")
    pred.add_argument("--dose-per-fraction-gy", type=float, default=2.0,
                      help="GARD regimen dose per fraction, Gy (default 2)")
    pred.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
    pred.set_defaults(func=cmd_sf2_predict)
    ev_sf2 = sf2_sub.add_parser(
        "evaluate", help="cross-validate every method: honest protocol and the paper's")
    ev_sf2.add_argument("--json", action="store_true", help="print one JSON object")
    ev_sf2.add_argument("--full", action="store_true",
                        help="the paper's 3,000 meta-iterations and 5 repeats (default: 1,000 "
                        "and 3 repeats)")
    ev_sf2.add_argument("--repeats", type=int, default=None, help="repeats of the 5-fold split")
    ev_sf2.add_argument("--iterations", type=int, default=None, help="meta-iterations")
    ev_sf2.add_argument("--settings", default="lung,pan_cancer",
                        help="comma-separated: lung, pan_cancer (default both)")
    ev_sf2.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    ev_sf2.add_argument("--save", action="store_true",
                        help="also save the result as models/sf2/evaluation.json "
                        "(the app shows it)")
    ev_sf2.add_argument("--executor", default="local", choices=("serial", "local", "ray"),
                        help="where folds run (default: a local process pool)")
    ev_sf2.add_argument("--address", default=None, help="Ray cluster address")
    ev_sf2.add_argument("--workers", type=int, default=None, help="local pool size")
    ev_sf2.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
    ev_sf2.set_defaults(func=cmd_sf2_evaluate)
    tr_sf2 = sf2_sub.add_parser("train", help="same as `artds train sf2`")
    _add_sf2_train_args(tr_sf2)

    for name, func, help_text in (
        ("recommend", cmd_recommend, "recommend an adaptive dose per fraction for each case"),
        ("report", cmd_report, "write a self-contained interactive HTML report"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--protocol", required=True, choices=PROTOCOL_NAMES)
        p.add_argument(
            "--input", required=True, help="CSV file in the format of docs/data-format.md"
        )
        p.add_argument(
            "--model",
            default="glogd",
            choices=("glogd", "single", "logistic", "reference"),
            help="outcome model: a trained ensemble from models/ (default glogd) or the "
            "virtual trial's reference truth",
        )
        p.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
        if name == "recommend":
            p.add_argument("--json", action="store_true", help="print one JSON object")
        else:
            p.add_argument("--out", required=True, help="HTML file to write")
        p.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except InputError as err:
        print(f"artds {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

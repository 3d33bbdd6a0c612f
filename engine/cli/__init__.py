"""``artds`` command line: serve the app, manage users and the database, write virtual trials,
recommend doses, write reports, plan an adaptive fractionation schedule, predict
radiosensitivity (SF2) from gene expression, import a treatment plan's dosimetric features,
evaluate drug-resistance prediction.

Only parses arguments and wires engine calls together. Exit codes: 0 success, 2 bad input
(one line on stderr naming the problem).

Two shared modules, then one module per domain that adds its sub-commands; :func:`build_parser`
assembles those in the order ``artds --help`` lists them:

- :mod:`~engine.cli.flags`: flags shared by several commands, declared once as argparse parent
  parsers (``--protocol``, ``--models-dir``, ``--json``, ``--seed``, the executor flags);
- :mod:`~engine.cli.common`: the one-line error policy, the executor behind ``--executor``,
  JSON-ready numbers;
- :mod:`~engine.cli.clinic`: ``serve``, ``user``, ``db``, ``models``;
- :mod:`~engine.cli.cases`: ``cohort``, ``recommend``, ``report``;
- :mod:`~engine.cli.arclids`: ``train rtoe|gan|odm``, ``evaluate rtoe|odm``;
- :mod:`~engine.cli.planner`: ``plan``;
- :mod:`~engine.cli.sf2`: ``sf2 predict|evaluate|train`` and ``train sf2``;
- :mod:`~engine.cli.dvh`: ``dvh features``;
- :mod:`~engine.cli.drug`: ``drug evaluate|train|predict|explain`` and ``train drug``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from engine.cli import arclids, cases, clinic, drug, dvh, planner, sf2
from engine.cli.common import run

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``artds`` parser: every sub-command, each with ``func`` set to the function that
    runs it."""
    parser = argparse.ArgumentParser(
        prog="artds", description="Decision support for response-adaptive radiotherapy."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    clinic.add_serve(sub)
    clinic.add_user(sub)
    clinic.add_db(sub)
    clinic.add_models(sub)
    cases.add_cohort(sub)

    train = sub.add_parser("train", help="train models and save them under models/")
    train_sub = train.add_subparsers(dest="family", required=True)
    arclids.add_train_rtoe(train_sub)
    sf2.add_train_sf2(
        train_sub, "sf2", "SF2 from gene expression: the served REPTILE ensemble (models/sf2/)"
    )
    drug.add_train_drug(
        train_sub, "drug", "drug resistance: the served calibrated tree models (models/drug/)"
    )
    arclids.add_train_gan(train_sub)
    arclids.add_train_odm(train_sub)

    evaluate = sub.add_parser("evaluate", help="print the saved evaluation of trained models")
    arclids.add_evaluate(evaluate.add_subparsers(dest="family", required=True))

    planner.add_plan(sub)
    sf2.add_sf2(sub)
    dvh.add_dvh(sub)
    drug.add_drug(sub)
    cases.add_recommend(sub)
    cases.add_report(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``artds`` with ``argv`` (default: the process arguments); returns the exit code."""
    return run(build_parser().parse_args(argv))

"""Benchmark: one drug-resistance prediction for all served drugs (aim < 200 ms), with and without
the explanations, and the loading of the served models. Prints JSON lines; asserts nothing.

``python -m tests.bench.drug_predict [--models-dir DIR]`` (skipped with a note when
models/drug holds no served models).
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

from engine.drug.serving import data_for, load_served_drug
from engine.platform.registry import ArtifactError
from tests.bench.timing import emit, timed_cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=None)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        models = load_served_drug(args.models_dir)
    except ArtifactError as err:
        print(json.dumps({"bench": "drug.predict", "skipped": str(err)}))
        return
    load_ms = (time.perf_counter() - start) * 1000.0
    data = data_for(models)
    x = data.x[data.cell_line_names.index("HCC827")][None, :]
    drugs = models.drugs
    print(json.dumps({"bench": "drug.load_served_models", "ms": round(load_ms, 1),
                      "drugs": len(drugs), "models": models.trees.n_models,
                      "trees": len(models.trees.roots), "nodes": models.trees.n_nodes}))

    def report(name: str, fn, repeats: int, **extra: object) -> None:
        wall, cpu = timed_cpu(fn, repeats)
        emit(name, wall, cpu_median_ms=round(sorted(cpu)[len(cpu) // 2], 3), **extra)

    report("drug.predict_one_profile_all_drugs", partial(models.predict, x), args.repeats,
           drugs=len(drugs), members=models.n_members, aim_ms=200)
    report("drug.explain_one_profile_one_drug", partial(models.explain, x, drugs[0], 10),
           args.repeats, drug=drugs[0])

    def everything() -> None:
        models.predict(x)
        for drug in drugs:
            models.explain(x, drug, 5)

    report("drug.predict_and_explain_one_profile_all_drugs", everything,
           max(3, args.repeats // 10), drugs=len(drugs))
    many = data.x[:200]
    report("drug.predict_200_profiles_all_drugs", partial(models.predict, many), 3,
           profiles=len(many))


if __name__ == "__main__":
    main()

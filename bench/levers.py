"""Benchmark: each feature lever of issue 16, measured the same way in one Spark session.

The training job's own splits (held-out topics by `topic_split`, then the seeded random split) and
feature pipeline (`fitting.fit_feature_model` with each option), then the catalog's classifiers with
their defaults; per lever and model: random-split (test) accuracy, grouped-split accuracy, accuracy
on the hand-written sanity set tests/model/data/ood_sanity.tsv, and the seconds the features and the
fit took. Not a test: run it by hand on local[2],

    .venv/bin/python bench/levers.py [--input PATH] [--levers 1,2,...|all] [--models lr,svc]

and it writes bench/results/levers.json. bench/train.py measures the kept configuration end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SANITY = ROOT / "tests" / "model" / "data" / "ood_sanity.tsv"
DEFAULT_INPUT = ROOT.parent / "shared" / "data" / "sentiment140" / "train_100k.csv"


def levers() -> dict[str, dict[str, Any]]:
    """Lever name -> fit_feature_model keyword arguments; \"+\" means added to rules v2 words."""
    from sentiment_mlops.features.text_cleaning import CLEANING_RULES_V3, rules_v3

    only = {m: {k: k == m for k in ("caps", "emoticons", "elongation", "punctuation")} for m in
            ("caps", "emoticons", "elongation", "punctuation")}  # fmt: skip
    return {
        "base (rules v2)": {},
        "+ lexicon": {"lexicon": True},
        "rules v3 (all markers)": {"rules": CLEANING_RULES_V3},
        "rules v3 + lexicon": {"rules": CLEANING_RULES_V3, "lexicon": True},
        "+ NB scaling": {"nb": True},
        "+ lexicon + NB scaling": {"lexicon": True, "nb": True},
        "rules v3 + lexicon + NB scaling": {"rules": CLEANING_RULES_V3, "lexicon": True, "nb": True},
        "+ bigrams": {"bigrams": True},
        **{f"rules v3, {m} marker only": {"rules": rules_v3(**flags)} for m, flags in only.items()},
    }


def sanity_rows() -> list[tuple[str, float]]:
    lines = SANITY.read_text(encoding="utf-8").splitlines()
    return [(t, float(y)) for y, t in (line.split("\t", 1) for line in lines if line[:1] in ("0", "1"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=os.environ.get("SENTIMENT140_SAMPLE", str(DEFAULT_INPUT)))
    parser.add_argument("--levers", default="all", help="comma list of lever numbers (1-based) or all")
    parser.add_argument("--models", default="lr")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "levers.json"))
    opts = parser.parse_args(argv)
    os.environ.setdefault("SPARK_MASTER", opts.master)

    from sentiment_mlops.core.spark_session import get_spark
    from sentiment_mlops.training import data_loading, metrics, topic_split
    from sentiment_mlops.training.fitting import fit_feature_model
    from sentiment_mlops.training.model_catalog import MODEL_SPECS, parse_model_keys

    spark = get_spark("bench-levers")
    labelled, _ = data_loading.load_labelled(spark, opts.input)
    rest, grouped = topic_split.split_by_topic(labelled, topic_split.DEFAULT_EVERY)
    train, _val, test = data_loading.split_dataset(rest, 0.8, 0.1, 42)
    train, test, grouped = train.cache(), test.cache(), grouped.cache()
    print(f"rows: train {train.count()}, test {test.count()}, grouped {grouped.count()}")
    sanity = spark.createDataFrame(sanity_rows(), "text string, label double").cache()
    keys = parse_model_keys(opts.models)
    results: list[dict[str, Any]] = []
    print(f"\n{'lever':28} {'model':20} {'random':>7} {'grouped':>8} {'sanity':>7} {'feat s':>7} {'fit s':>6}")
    table = levers()
    names = list(table) if opts.levers == "all" else [list(table)[int(i) - 1] for i in opts.levers.split(",")]
    for lever in names:
        t0 = time.perf_counter()
        features = fit_feature_model(train, 32768, **table[lever])
        train_f = features.transform(train).cache()
        train_f.count()
        feature_seconds = time.perf_counter() - t0
        for key in keys:
            spec = MODEL_SPECS[key]
            t0 = time.perf_counter()
            classifier = spec.build(42).fit(train_f)
            fit_seconds = time.perf_counter() - t0
            acc = {
                name: metrics.evaluate(classifier.transform(features.transform(df)))[0]["accuracy"]
                for name, df in (("random", test), ("grouped", grouped), ("sanity", sanity))
            }
            row = {"lever": lever, "model": spec.display_name, **acc,
                   "feature_seconds": round(feature_seconds, 1), "fit_seconds": round(fit_seconds, 1)}  # fmt: skip
            results.append(row)
            print(f"{lever:28} {spec.display_name:20} {acc['random']:7.4f} {acc['grouped']:8.4f} "
                  f"{acc['sanity']:7.4f} {feature_seconds:7.1f} {fit_seconds:6.1f}", flush=True)  # fmt: skip
        train_f.unpersist()
    spark.stop()
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps({"master": opts.master, "results": results}, indent=2))
    print(f"\nwrote {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

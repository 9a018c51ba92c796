"""The demo steps of the README's main command: drop a CSV into the streaming input bucket (whole,
as a finished `gsutil cp` appears) and print the predictions the serving job writes for it.

    python -m sentiment_mlops.backends.local.demo drop [--gcs-bucket B]
    python -m sentiment_mlops.backends.local.demo show [--gcs-bucket B] [--timeout 300]

`drop` runs before the serving DAG, so the stream's first micro-batch (which the DAG waits for)
is this file; `show` waits for its rows in the prediction Parquet and prints them. The folders are the
file-source serving job's, from the job builder's bucket layout (no Airflow configuration needed).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.dataset as ds

from sentiment_mlops import jobs as job_spec
from sentiment_mlops.core.naming import DEFAULT_BUCKET
from sentiment_mlops.core.settings import load_settings
from sentiment_mlops.core.storage import join_uri, local_path

DEMO_TWEETS = (
    "Just got the job offer!!! Best day of my life",
    "my flight got cancelled again, stuck at the airport all night",
    "loving the sunshine today, off to the beach with friends",
    "can't sleep, headache and exams tomorrow... this is awful",
    "thanks so much for the birthday wishes everyone, you're amazing",
    "my phone screen cracked and the repair shop is closed. great.",
)


def drop_file(inbox: Path, tweets: tuple[str, ...] = DEMO_TWEETS) -> tuple[Path, list[str]]:
    """Write `demo-<time>.csv` under a hidden name, then rename it into place."""
    inbox.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    ids = [f"demo-{stamp}-{i}" for i in range(len(tweets))]
    tmp = inbox / f".demo-{stamp}.csv.part"
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows(zip(ids, tweets, strict=True))
    target = inbox / f"demo-{stamp}.csv"
    tmp.rename(target)
    return target, ids


def wait_for_predictions(predictions: Path, ids: list[str], timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predictions.exists():
            table = ds.dataset(str(predictions), format="parquet", partitioning="hive").to_table(
                filter=ds.field("id").isin(ids)
            )
            if table.num_rows >= len(ids):
                return sorted(table.to_pylist(), key=lambda r: ids.index(r["id"]))
        time.sleep(2)
    raise TimeoutError(f"no predictions for {len(ids)} demo rows under {predictions} after {timeout:.0f}s")


def demo_paths(gcs_bucket: str) -> dict[str, str]:
    """The file-source serving job's input folder and prediction Parquet folder for bucket base `gcs_bucket`."""
    paths = job_spec.serving_paths(gcs_bucket, "file")
    return {"input": paths["input"], "predictions": join_uri(paths["output"], "predictions")}


def _ids_file() -> Path:
    return load_settings("local").run_dir / "demo-ids.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("drop", "show"))
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--gcs-bucket", default=DEFAULT_BUCKET, help="the GCS_BUCKET Variable")
    args = parser.parse_args(argv)
    paths = demo_paths(args.gcs_bucket)
    if args.action == "drop":
        target, ids = drop_file(local_path(paths["input"]))
        _ids_file().parent.mkdir(parents=True, exist_ok=True)
        _ids_file().write_text(json.dumps(ids))
        print(f"dropped {len(ids)} tweets as {paths['input']}/{target.name} (local folder {target.parent})")
        return 0
    try:
        ids = json.loads(_ids_file().read_text())
    except (OSError, ValueError):
        print(f"ERROR: nothing dropped yet ({_ids_file()} missing): run the drop step first", file=sys.stderr)
        return 1
    try:
        rows = wait_for_predictions(local_path(paths["predictions"]), ids, args.timeout)
    except TimeoutError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    # LinearSVC has no probability: its margin (raw_score, >0 means positive) is shown instead.
    print(f"{'sentiment':9}  {'P(pos)/margin':>13}  {'model':>34}  text")
    for r in rows:
        sentiment = "positive" if r["prediction"] == 1 else "negative"
        prob = f"{r['probability']:.3f}" if r["probability"] is not None else f"m {r['raw_score']:+.3f}"
        model = f"{r['model_name']} v{r['model_version']}"
        print(f"{sentiment:9}  {prob:>13}  {model:>34}  {r['text']}")
    print(f"\npredictions: {paths['predictions']} = {local_path(paths['predictions'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

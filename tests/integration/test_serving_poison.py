"""Poison files through the real serving job, with `kill -9` of the driver at random points: every good
row is predicted exactly once, every bad row quarantined exactly once, and no input stops the stream."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from sentiment_mlops import jobs
from sentiment_mlops.core.storage import local_path
from tests.fixtures_serving import served_version_fixture  # noqa: F401
from tests.integration.test_serving_job import _drop, _out, _predictions, _serving_cmd

pytestmark = pytest.mark.integration

# (file name, bytes, good ids, quarantined (source_row, reason prefix)); every bad row is a poison pill
# that once failed the whole batch (inf labels, year-1 timestamps) or its file (a latin-1 byte).
POISON = [
    ("p-labels.csv", b"id,text,label\nL1,infinite,inf\nL2,huge,1e400\nL3,negative,-inf\n", {"L1", "L2", "L3"}, []),
    ("p-time.csv", b"id,text,timestamp\nT1,year one,0001-01-01T00:00:00+05:00\nT2,far,1e300\n", {"T1", "T2"}, []),
    ("p-bytes.csv", b"id,text\nB1,caf\xe9\nB2,fine\n", {"B2"}, [(2, "not UTF-8")]),
    # the original project's test file: a missing optional trailing field is no error (ids: file:row)
    (
        "p-short.csv",
        b"text,label\nI love this product!,\nThis is terrible,\nNot bad\n",
        {"p-short.csv:2", "p-short.csv:3", "p-short.csv:4"},
        [],
    ),
    ("p-zero.csv", b"", set(), []),
    ("p-header.csv", b"id,text,label\n", set(), []),
    ("p-wide.csv", b"id,text\nW1,ok\nW2,too,many\n", {"W1"}, [(3, "3 fields")]),
    ("p-headerless.csv", b"I love this!,1\n", {"p-headerless.csv:1"}, []),  # the reference's text[,label]
    (
        "p-s140.csv",
        b'"4","1467810369","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","user","so happy today"\n',
        {"1467810369"},
        [],
    ),
]


@pytest.mark.timeout(900)
def test_poison_files_and_sigkill_at_random_points(mlflow_server, served_version, tmp_path: Path) -> None:
    tag = "poisonkill"
    inbox = local_path(jobs.serving_paths(tag)["input"])
    expected: set[str] = set()
    for f in range(6):
        rows = [(f"g{f}-{r}", f"tweet {r} of file {f} is {'lovely' if r % 2 else 'sad'}") for r in range(200)]
        _drop(inbox, f"good-{f:02d}.csv", rows)
        expected |= {i for i, _ in rows}
        name, content, _, _ = POISON[f % len(POISON)]
        (inbox / name).write_bytes(content)
    for name, content, _, _ in POISON[6:]:
        (inbox / name).write_bytes(content)
    env = {**os.environ, "SPARK_MASTER": "local[2]"}
    metrics_dir = _out(tag) / "_metrics" / "batches"
    rng = random.Random(int(os.environ.get("POISON_KILL_SEED", "7")))
    for attempt in range(3):
        log = (tmp_path / f"run-{attempt}.log").open("w")
        proc = subprocess.Popen(
            [*_serving_cmd(tag, mlflow_server, served_version)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        before = len(list(metrics_dir.glob("batch-*.json")))
        deadline = time.monotonic() + 240
        while len(list(metrics_dir.glob("batch-*.json"))) <= before and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 2.0))  # somewhere inside a later batch, or between two
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    final = subprocess.run(
        _serving_cmd(tag, mlflow_server, served_version, "--available-now"),
        capture_output=True, text=True, env=env, timeout=400,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr[-3000:]

    out = _predictions(tag)
    good = expected | set().union(*(ids for _, _, ids, _ in POISON))
    assert set(out["id"]) == good and not out["id"].duplicated().any()
    assert sorted(out.loc[out["source"] == "p-short.csv", "text"]) == ["I love this product!", "Not bad",
                                                                      "This is terrible"]  # fmt: skip
    assert out.loc[out["id"].isin(["L1", "L2", "L3"]), "label"].isna().all()
    by_id = out.set_index("id")
    assert (by_id.loc["p-headerless.csv:1", "text"], by_id.loc["p-headerless.csv:1", "label"]) == ("I love this!", 1)
    assert (by_id.loc["1467810369", "text"], by_id.loc["1467810369", "label"]) == ("so happy today", 1)
    quarantine = pd.read_parquet(_out(tag) / "quarantine")
    keys = list(zip(quarantine["source"], quarantine["source_row"], strict=True))
    assert len(keys) == len(set(keys)) == 2
    for name, _, _, bad in POISON:
        for row, reason in bad:
            got = quarantine[(quarantine["source"] == name) & (quarantine["source_row"] == row)]["error"]
            assert len(got) == 1 and got.iloc[0].startswith(reason)
    records = [json.loads(p.read_text()) for p in metrics_dir.glob("batch-*.json")]
    assert sum(r.get("empty_files", 0) for r in records) >= 2  # p-zero.csv and p-header.csv left a trace

"""`sentiment-jobs`: the local backend's answer to `gcloud dataproc jobs`.

sentiment-jobs list [--filter 'labels.app=sentiment-serving'] [--state-filter active] [--format json]
sentiment-jobs describe JOB_ID
sentiment-jobs kill JOB_ID
sentiment-jobs submit JOB_JSON_FILE [--wait]
sentiment-jobs log JOB_ID [-n 50]

Jobs live under $SENTIMENT_HOME/run/jobs (SENTIMENT_HOME defaults to ~/.sentiment-mlops).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from sentiment_mlops.backends.local import jobs as local_jobs

# gcloud-style filter terms: `labels.KEY=VALUE`, `status.state=ACTIVE`, joined by AND.
_TERM_RE = re.compile(r"^\s*(labels\.[A-Za-z0-9_-]+|status\.state)\s*[:=]\s*(\S+)\s*$")


def parse_filter(expression: str) -> tuple[dict[str, str], str | None]:
    """`labels.app=sentiment-serving AND status.state=ACTIVE` -> ({'app': 'sentiment-serving'}, 'ACTIVE')."""
    labels: dict[str, str] = {}
    state: str | None = None
    if not expression.strip():
        return labels, state
    for term in re.split(r"\s+AND\s+", expression.strip(), flags=re.IGNORECASE):
        match = _TERM_RE.match(term)
        if not match:
            raise ValueError(
                f"unsupported filter term {term!r}; use labels.KEY=VALUE or status.state=ACTIVE joined by AND"
            )
        key, value = match.group(1), match.group(2).strip("'\"")
        if key == "status.state":
            state = value
        else:
            labels[key.removeprefix("labels.")] = value
    return labels, state


def _labels_text(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def cmd_list(args: argparse.Namespace) -> int:
    labels, state = parse_filter(args.filter or "")
    records = local_jobs.list_jobs(state_filter=args.state_filter or state, label_filter=labels or None)
    if args.format == "json":
        print(json.dumps([r.as_dataproc() for r in records], indent=2))
        return 0
    rows = [("JOB_ID", "TYPE", "STATUS", "SUBMITTED", "LABELS")]
    rows += [(r.job_id, "pyspark", r.state, r.submitted_at, _labels_text(r.labels)) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)) + "  " + row[-1])
    if not records:
        print("Listed 0 items.", file=sys.stderr)
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    print(json.dumps(local_jobs.get(args.job_id).as_dataproc(), indent=2))
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    before = local_jobs.get(args.job_id)
    record = local_jobs.cancel(args.job_id, timeout=args.timeout)
    if before.state in local_jobs.TERMINAL_STATES:
        print(f"Job [{record.job_id}] is already {record.state}; nothing to cancel.")
    else:
        print(f"Job cancellation initiated for [{record.job_id}]. State: {record.state}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    job = json.loads(Path(args.job_file).read_text())
    record = local_jobs.submit(job, wait=args.wait)
    verb = "exists already (attached, nothing new started)" if record.attached else "submitted"
    print(f"Job [{record.job_id}] {verb}. State: {record.state}. Driver log: {record.log_path}")
    if args.wait and record.state != local_jobs.DONE:
        print(f"ERROR: job {record.job_id} ended {record.state}: {record.details}", file=sys.stderr)
        print("\n".join(local_jobs.log_tail(record.job_id, 30)), file=sys.stderr)
        return 1
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    local_jobs.get(args.job_id)  # a clear "not found" before an empty tail
    print("\n".join(local_jobs.log_tail(args.job_id, args.lines)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentiment-jobs", description="local Spark jobs, like gcloud dataproc jobs")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list jobs, newest first")
    p.add_argument("--filter", default="", help="e.g. 'labels.app=sentiment-serving AND status.state=ACTIVE'")
    p.add_argument(
        "--state-filter", default=None, help="active | inactive | PENDING | RUNNING | DONE | ERROR | CANCELLED"
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("describe", help="a job's record as JSON")
    p.add_argument("job_id")
    p.set_defaults(func=cmd_describe)
    p = sub.add_parser("kill", help="cancel a job (SIGTERM its processes, SIGKILL after --timeout)")
    p.add_argument("job_id")
    p.add_argument("--timeout", type=float, default=20.0)
    p.set_defaults(func=cmd_kill)
    p = sub.add_parser("submit", help="submit a Dataproc Job JSON file")
    p.add_argument("job_file")
    p.add_argument("--wait", action="store_true", help="block until the job ends; exit 1 unless DONE")
    p.set_defaults(func=cmd_submit)
    p = sub.add_parser("log", help="the last lines of a job's driver log")
    p.add_argument("job_id")
    p.add_argument("-n", "--lines", type=int, default=50)
    p.set_defaults(func=cmd_log)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (local_jobs.JobError, ValueError, OSError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

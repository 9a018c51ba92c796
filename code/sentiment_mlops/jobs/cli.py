"""Command line of the job specification, used by ci-cd/*.sh so the scripts cannot drift from the
builder the DAGs use::

    python -m sentiment_mlops.jobs.cli layout --gcs-bucket B
    python -m sentiment_mlops.jobs.cli gcloud-command --kind training --project-id P --region R \\
        --cluster C --gcs-bucket B --input gs://... --output gs://... --mlflow-uri http://... [-- EXTRA]
    python -m sentiment_mlops.jobs.cli job-json --kind serving ...   # the job dict as JSON

The job's own options are generated from the signatures of training_args/serving_args, so a new
builder argument is a new CLI option without touching this module.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shlex
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

from sentiment_mlops.core.naming import APP_SERVING, APP_TRAINING
from sentiment_mlops.core.settings import DEFAULT_KAFKA_INPUT_TOPIC, DEFAULT_KAFKA_OUTPUT_TOPIC, DEFAULT_SERVING_MODEL
from sentiment_mlops.jobs.arguments import serving_args, training_args
from sentiment_mlops.jobs.builders import DataprocTarget, serving_job, training_job
from sentiment_mlops.jobs.gcloud import job_to_gcloud_command
from sentiment_mlops.jobs.layout import (
    PACKAGE_ZIP,
    SERVING_ENTRY,
    TRAINING_ENTRY,
    bucket_names,
    default_code_uri,
    serving_paths,
    training_paths,
)
from sentiment_mlops.jobs.serverless import DEFAULT_RUNTIME, ServerlessTarget, batch_from_job, batch_to_gcloud_command

_ARG_BUILDERS: dict[str, Callable[..., list[str]]] = {"training": training_args, "serving": serving_args}


def _option_type(annotation: Any) -> type | None:
    """int/float/str/bool from an annotation such as `int | None`; None for anything else (lists)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _option_type(inner[0]) if len(inner) == 1 else None
    return annotation if annotation in (int, float, str, bool) else None


def _function_options(func: Callable[..., Any]) -> dict[str, tuple[type, bool]]:
    """keyword name -> (type, required) for the scalar keyword-only parameters of `func`."""
    hints = typing.get_type_hints(func)
    out: dict[str, tuple[type, bool]] = {}
    for name, param in inspect.signature(func).parameters.items():
        opt_type = _option_type(hints.get(name))
        if param.kind is inspect.Parameter.KEYWORD_ONLY and opt_type is not None:
            out[name] = (opt_type, param.default is inspect.Parameter.empty)
    return out


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _job_options() -> argparse.ArgumentParser:
    """Options shared by gcloud-command and job-json: target, labels, properties, job arguments."""
    job_opts = argparse.ArgumentParser(add_help=False)
    job_opts.add_argument("--kind", choices=sorted(_ARG_BUILDERS), required=True)
    job_opts.add_argument("--project-id", required=True)
    job_opts.add_argument("--region", required=True)
    job_opts.add_argument("--cluster", help="the Dataproc cluster (not for --serverless)")
    job_opts.add_argument("--gcs-bucket", help="base bucket name; code URI defaults to gs://BUCKET-code/jobs")
    job_opts.add_argument("--code-uri", help="where entry scripts and the zip are (overrides --gcs-bucket)")
    job_opts.add_argument("--job-id")
    job_opts.add_argument("--label", action="append", type=_key_value, default=[], metavar="KEY=VALUE")
    job_opts.add_argument("--property", action="append", type=_key_value, default=[], metavar="KEY=VALUE")
    job_opts.add_argument(
        "--kafka", action="store_true", help="serving: add the Kafka connector (implied by kafka use)"
    )
    job_opts.add_argument("--max-failures-per-hour", type=int, help="serving: restart the driver after failures")
    # SUPPRESS keeps unset options out of the namespace: the builder's defaults then apply.
    seen: set[str] = set()
    for func in _ARG_BUILDERS.values():
        for name, (opt_type, _required) in _function_options(func).items():
            if name in seen:
                continue
            seen.add(name)
            flag = "--" + name.replace("_", "-")
            if opt_type is bool:
                job_opts.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS)
            else:
                job_opts.add_argument(flag, dest=name, type=opt_type, default=argparse.SUPPRESS)
    return job_opts


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with the subcommands layout, gcloud-command and job-json."""
    parser = argparse.ArgumentParser(
        prog="python -m sentiment_mlops.jobs.cli",
        description="Dataproc job specs from the one builder (used by ci-cd/*.sh).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    layout = sub.add_parser("layout", help="print entry names, URIs, bucket names and defaults as KEY=VALUE lines")
    layout.add_argument("--gcs-bucket", required=True)
    layout.add_argument("--source-type", default="file", help="serving source type for the serving paths")
    layout.add_argument("--run-tag", default="RUN_TAG", help="run tag for the training output folder")
    job_opts = _job_options()
    gcmd = sub.add_parser("gcloud-command", parents=[job_opts], help="print the gcloud submit command")
    gcmd.add_argument("--async", dest="async_", action="store_true")
    gcmd.add_argument("--print0", action="store_true", help="NUL-separated argv (for bash mapfile) instead of shell")
    gcmd.add_argument("--serverless", action="store_true", help="a Dataproc Serverless batch instead of a cluster job")
    gcmd.add_argument("--runtime-version", default=DEFAULT_RUNTIME, help="serverless: runtime (sets the Spark)")
    gcmd.add_argument("--service-account", help="serverless: the batch's service account")
    gcmd.add_argument("--subnetwork", help="serverless: subnetwork name or URI")
    gcmd.add_argument("--ttl-seconds", type=int, help="serverless: end the batch after this long (the stream's)")
    sub.add_parser("job-json", parents=[job_opts], help="print the job dict as JSON")
    return parser


def _builder_arguments(ns: argparse.Namespace) -> dict[str, Any]:
    """The job-argument options given on the command line, checked against --kind."""
    accepted = _function_options(_ARG_BUILDERS[ns.kind])
    all_options = {n for f in _ARG_BUILDERS.values() for n in _function_options(f)}
    given = {name: getattr(ns, name) for name in all_options if hasattr(ns, name)}
    wrong = sorted(n for n in given if n not in accepted)
    if wrong:
        flags = ", ".join("--" + n.replace("_", "-") for n in wrong)
        raise ValueError(f"{flags} do(es) not apply to --kind {ns.kind}")
    missing = sorted(n for n, (_t, required) in accepted.items() if required and n not in given)
    if missing:
        raise ValueError(f"--kind {ns.kind} needs " + ", ".join("--" + n.replace("_", "-") for n in missing))
    return given


def _job_from_cli(ns: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    given = _builder_arguments(ns)
    job_args = _ARG_BUILDERS[ns.kind](**given, extra=extra)
    if ns.code_uri:
        code_uri = ns.code_uri.rstrip("/")
    elif ns.gcs_bucket:
        code_uri = default_code_uri(ns.gcs_bucket)
    else:
        raise ValueError("give --gcs-bucket or --code-uri")
    if not ns.cluster and not getattr(ns, "serverless", False):
        raise ValueError("give --cluster (or --serverless for a Dataproc Serverless batch)")
    # A batch has no cluster; the job dict it is built from names a placeholder.
    target = DataprocTarget(ns.project_id, ns.region, ns.cluster or "serverless", code_uri)
    labels, properties = dict(ns.label), dict(ns.property)
    if ns.kind == "training":
        if ns.kafka or ns.max_failures_per_hour:
            raise ValueError("--kafka and --max-failures-per-hour apply to --kind serving only")
        return training_job(target, job_args, labels=labels, job_id=ns.job_id, properties=properties)
    kafka = ns.kafka or given.get("source_type") == "kafka" or bool(given.get("write_kafka"))
    return serving_job(
        target,
        job_args,
        kafka=kafka,
        labels=labels,
        job_id=ns.job_id,
        properties=properties,
        max_failures_per_hour=ns.max_failures_per_hour,
    )


def layout_lines(gcs_bucket: str, source_type: str = "file", run_tag: str = "RUN_TAG") -> dict[str, str]:
    """KEY -> value printed by `layout`: entry names, app labels, defaults, paths and bucket names."""
    return {
        "CODE_URI": default_code_uri(gcs_bucket),
        "TRAINING_ENTRY": TRAINING_ENTRY,
        "SERVING_ENTRY": SERVING_ENTRY,
        "PACKAGE_ZIP": PACKAGE_ZIP,
        "APP_TRAINING": APP_TRAINING,
        "APP_SERVING": APP_SERVING,
        "DEFAULT_SERVING_MODEL": DEFAULT_SERVING_MODEL,
        "DEFAULT_KAFKA_INPUT_TOPIC": DEFAULT_KAFKA_INPUT_TOPIC,
        "DEFAULT_KAFKA_OUTPUT_TOPIC": DEFAULT_KAFKA_OUTPUT_TOPIC,
        **{f"TRAINING_{key.upper()}": value for key, value in training_paths(gcs_bucket, run_tag).items()},
        **{f"SERVING_{key.upper()}": value for key, value in serving_paths(gcs_bucket, source_type).items()},
        **{f"BUCKET_{key.upper()}": value for key, value in bucket_names(gcs_bucket).items()},
    }


def _run(ns: argparse.Namespace, extra: list[str]) -> str:
    """The text a subcommand prints (without the final newline for `--print0`)."""
    if ns.command == "layout":
        lines = layout_lines(ns.gcs_bucket, ns.source_type, ns.run_tag)
        return "\n".join(f"{k}={v}" for k, v in lines.items()) + "\n"
    job = _job_from_cli(ns, extra)
    if ns.command == "job-json":
        return json.dumps(job, indent=2, sort_keys=True) + "\n"
    if ns.serverless:
        target = ServerlessTarget(ns.project_id, ns.region, ns.runtime_version, ns.service_account, ns.subnetwork)
        batch = batch_from_job(job, target, ttl_seconds=ns.ttl_seconds)
        cmd = batch_to_gcloud_command(batch, target, batch_id=ns.job_id, async_=ns.async_)
    else:
        cmd = job_to_gcloud_command(job, ns.region, ns.project_id, async_=ns.async_)
    return "".join(f"{part}\0" for part in cmd) if ns.print0 else shlex.join(cmd) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on `argv` (default sys.argv[1:]); returns the exit code (2 for a bad job)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` goes to the job verbatim (split here: argparse would treat such words as
    # positionals and reject or reinterpret them).
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    ns = build_parser().parse_args(argv)
    try:
        text = _run(ns, extra)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

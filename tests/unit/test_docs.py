"""The user documentation stays true to the code.

Checked in README.md, PIPELINE_FLOW_DOCUMENTATION.md and the docs under airflow/:

- Airflow Variables: every name the docs give (Variable tables, `serving_*`/`kafka_*` names, "Variable
  `X`", `airflow variables set X`) exists in sentiment_mlops.orchestration.config; the README table lists every
  Variable, and the defaults and allowed values in the tables are the code's.
- DAGs: every DAG id exists in airflow/dags (parsed with Airflow's DagBag); task ids in "Task id" tables
  and in `a -> b -> c` chains exist, and a DAG's task table is complete; "Param" tables list exactly the
  DAG's params with their defaults; `--conf` keys are params of the DAG triggered.
- Commands: `--flags` given for the training and serving jobs exist in their argparse parsers (and the
  flags of the other project CLIs in theirs); `sentiment-jobs` subcommands and `python -m sentiment_mlops.X`
  modules exist; scripts and files referenced by path exist, and relative links resolve.
- Names: ALL_CAPS environment/config names appear in the code; `sentiment_mlops.X.NAME` exists; registered
  model, experiment and bucket names follow the code's naming; the Spark properties table equals
  jobs.TRAINING_PROPERTIES / STREAMING_PROPERTIES; XCom keys appear in the task code.
- No IP address other than loopback (placeholders such as MLFLOW_VM_IP instead).

Prose is free: only backticked code, code blocks, tables and links are checked.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = (
    "README.md",
    "PIPELINE_FLOW_DOCUMENTATION.md",
    "airflow/README.md",
    "airflow/GCP_DATAPROC_SETUP.md",
    "airflow/dags/SERVING_DAGS_README.md",
)
# Parsing the DAGs needs an AIRFLOW_HOME; never the user's ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="sentiment-airflow-docs-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

# Names of other tools that the docs quote and the project's code never spells out.
EXTERNAL_NAMES = {"FAILED_READ_FILE", "PIP_PACKAGES"}
# Where the code's ALL_CAPS names (environment variables, constants) are looked up.
CORPUS_GLOBS = (
    "code/**/*.py",
    "airflow/**/*.py",
    "airflow/*.sh",
    "airflow/Dockerfile",
    "airflow/docker-compose.yml",
    "ci-cd/*.sh",
    "scripts/*.sh",
    "bench/*.py",
    "tests/e2e/*.py",  # the end-to-end test's documented switches
    "*.sh",
    ".github/workflows/*.yml",
    "pyproject.toml",
    "requirements.txt",
)
ROOT_ENTRIES = ("code", "airflow", "ci-cd", "scripts", "bench", "tests", ".github")
SHELL_LANGS = {"", "bash", "sh", "shell", "console"}
CHAIN_ITEM = re.compile(r"^[a-z][a-z0-9_]*$")
ALL_CAPS = re.compile(r"(?<![A-Za-z0-9_])[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?![A-Za-z0-9_])")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


# --------------------------------------------------------------------------------------------------
# Markdown model


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    line: int
    dag: str | None  # the DAG id named by the nearest heading above


@dataclass
class Doc:
    path: str
    text: str
    inline: list[tuple[int, str]] = field(default_factory=list)  # (line, code span)
    blocks: list[tuple[int, str, str]] = field(default_factory=list)  # (line, language, body)
    tables: list[Table] = field(default_factory=list)
    headings: list[tuple[int, str]] = field(default_factory=list)
    prose: list[tuple[int, str]] = field(default_factory=list)  # lines outside code blocks

    def where(self, line: int) -> str:
        return f"{self.path}:{line}"


def split_cells(line: str) -> list[str]:
    """Table cells, not splitting on `|` inside code spans."""
    cells, current, in_code = [], "", False
    for ch in line.strip().strip("|"):
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            cells.append(current.strip())
            current = ""
        else:
            current += ch
    cells.append(current.strip())
    return cells


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def parse_doc(rel: str, dag_ids: set[str]) -> Doc:
    text = (ROOT / rel).read_text(encoding="utf-8")
    doc = Doc(rel, text)
    lines = text.splitlines()
    current_dag: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^\s*```(\w*)", line)
        if fence:
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i])
                i += 1
            doc.blocks.append((start + 1, fence.group(1).lower(), "\n".join(body)))
            i += 1
            continue
        doc.prose.append((i + 1, line))
        for span in code_spans(line):
            doc.inline.append((i + 1, span))
        if line.startswith("#"):
            doc.headings.append((i + 1, line))
            named = [d for d in re.findall(r"sentiment_[a-z_]+", line) if d in dag_ids]
            current_dag = named[0] if named else None
        if line.lstrip().startswith("|") and i + 1 < len(lines) and re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1]):
            header = [c.strip("` ") for c in split_cells(line)]
            rows, j = [], i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                rows.append(split_cells(lines[j]))
                doc.prose.append((j + 1, lines[j]))
                for span in code_spans(lines[j]):
                    doc.inline.append((j + 1, span))
                j += 1
            doc.tables.append(Table(header, rows, i + 1, current_dag))
            i = j
            continue
        i += 1
    return doc


def first_code(cell: str) -> str | None:
    spans = code_spans(cell)
    return spans[0] if spans else None


# --------------------------------------------------------------------------------------------------
# The code's facts


@dataclass
class Facts:
    dags: dict[str, tuple[set[str], dict[str, Any]]]  # dag id -> (task ids, param defaults)
    variables: set[str]
    training_flags: set[str]
    serving_flags: set[str]
    jobs_subcommands: dict[str, set[str]]
    dataproc_flags: set[str]
    all_flags: set[str]
    corpus_names: set[str]
    metrics: set[str]  # Prometheus metric names the project exports or its alert rules read


def exported_metric_names() -> set[str]:
    """Sample and family names of the online server's and the stream's registries (no model loaded, so
    the info series are added by name), and every `sentiment_*` name the alert rules use."""
    from sentiment_mlops.online.metrics import ServerMetrics
    from sentiment_mlops.registry.model_watcher import ModelWatcher
    from sentiment_mlops.serving.prometheus_metrics import StreamMetrics

    watcher: ModelWatcher[Any] = ModelWatcher("http://127.0.0.1:1", "m", "Production", loader=lambda uri: None)
    names = {"sentiment_online_model_info", "sentiment_stream_model_info", "sentiment_stream_backlog"}
    stream = StreamMetrics(watcher, "file", challenger=watcher)  # with the shadow challenger's series
    for registry in (ServerMetrics(watcher).registry, stream.registry):
        for family in registry.collect():
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
    alerts = (ROOT / "monitoring" / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    return names | set(re.findall(r"\bsentiment_[a-z_]+", alerts))


def parser_flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for s in parser._option_string_actions if s.startswith("--")}


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


@cache
def source_flags(path: Path) -> frozenset[str]:
    """`--flags` a CLI defines: add_argument string literals (Python) or any `--flag` word (shell)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        flags = set()
        for call in re.finditer(r"add_argument\(((?:\s*\"[^\"]*\"\s*,?)+)", text):
            flags.update(f for f in re.findall(r"\"(--[^\"]+)\"", call.group(1)))
        return frozenset(flags)
    flags = set(FLAG.findall(text))
    for sourced in re.findall(r'^\s*\.\s+"\$ROOT/([^"]+)"', text, re.M):  # `. "$ROOT/ci-cd/common.sh"`
        flags |= source_flags(ROOT / sourced)
    return frozenset(flags)


# `python -m` names of the job-spec command line (the alias kept for ci-cd and users, and its home).
DATAPROC_CLIS = ("dataproc_jobs", "jobs.cli")


def module_path(module: str) -> Path:
    """The file of `sentiment_mlops.<module>` (dotted, e.g. `jobs.cli`); a package's __init__.py."""
    base = ROOT / "code" / "sentiment_mlops" / Path(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_name(base.name + ".py")


def split_module_attr(dotted: str) -> tuple[str, str | None] | None:
    """`jobs.layout.bucket_names` -> ("jobs.layout", "bucket_names"): the longest module prefix and at
    most one attribute after it; None when no such split names an existing module."""
    parts = dotted.split(".")
    for cut in (len(parts), len(parts) - 1):
        if cut and module_path(".".join(parts[:cut])).is_file():
            return ".".join(parts[:cut]), (parts[cut] if cut < len(parts) else None)
    return None


@pytest.fixture(scope="module")
def facts() -> Facts:
    from airflow.dag_processing.dagbag import DagBag

    from sentiment_mlops.backends.local import jobs_cli as local_jobs_cli
    from sentiment_mlops.jobs import cli as jobs_cli
    from sentiment_mlops.orchestration import config as airflow_config
    from sentiment_mlops.orchestration import notifications
    from sentiment_mlops.serving import job as serving_job
    from sentiment_mlops.training import job as training_job

    bag = DagBag(str(ROOT / "airflow" / "dags"))
    assert bag.import_errors == {}, bag.import_errors
    dags = {
        dag_id: ({t.task_id for t in dag.tasks}, {k: dag.params[k] for k in dag.params.keys()})
        for dag_id, dag in bag.dags.items()
    }
    training = parser_flags(training_job.build_arg_parser())
    serving = parser_flags(serving_job.build_arg_parser())
    jobs = {name: parser_flags(p) for name, p in subparsers(local_jobs_cli.build_parser()).items()}
    dataproc = set().union(*(parser_flags(p) for p in subparsers(jobs_cli.build_parser()).values()))
    all_flags = training | serving | dataproc | set().union(*jobs.values())
    clis = [*(ROOT / "code").rglob("*.py"), *(ROOT / "bench").glob("*.py"), *ROOT.glob("*.sh")]
    clis += [p for folder in ("airflow", "ci-cd", "scripts") for p in (ROOT / folder).glob("*.sh")]
    for path in clis:
        all_flags |= source_flags(path)
    corpus = set()
    for pattern in CORPUS_GLOBS:
        for path in ROOT.glob(pattern):
            if ".venv" not in path.parts and path.is_file():
                corpus.update(ALL_CAPS.findall(path.read_text(encoding="utf-8", errors="replace")))
    variables = set(airflow_config.ALL_VARIABLES) | set(monitoring_defaults()) | {notifications.VAR_EMAIL_TO}
    return Facts(
        dags=dags,
        variables=variables,
        training_flags=training,
        serving_flags=serving,
        jobs_subcommands=jobs,
        dataproc_flags=dataproc,
        all_flags=all_flags,
        corpus_names=corpus | variables,
        metrics=exported_metric_names(),
    )


def monitoring_defaults() -> dict[str, Any]:
    """The monitoring DAG's Variables and their defaults (None where unset means "off")."""
    from dataclasses import fields

    from sentiment_mlops.orchestration import monitoring_config as mc

    cfg = mc.MonitoringConfig()
    return {mc.PREFIX + f.name: getattr(cfg, f.name) or None for f in fields(cfg)}


def non_dag_names() -> set[str]:
    """`sentiment_*` names that are not DAG ids: the notification Connections and the Prometheus
    metrics the code defines."""
    from sentiment_mlops.orchestration import notifications

    metric = re.compile(r"(?:Gauge|Counter|Histogram|Summary|Info|Enum)\(\s*\"(sentiment_[a-z_]+)\"")
    names = {notifications.SMTP_CONN_ID, notifications.SLACK_CONN_ID}
    for path in (ROOT / "code").rglob("*.py"):
        names.update(metric.findall(path.read_text(encoding="utf-8")))
    return names


@pytest.fixture(scope="module")
def docs(facts: Facts) -> list[Doc]:
    missing = [d for d in DOCS if not (ROOT / d).is_file()]
    assert not missing, f"documents missing: {missing}"
    return [parse_doc(d, set(facts.dags)) for d in DOCS]


def all_task_ids(facts: Facts) -> set[str]:
    return set().union(*(tasks for tasks, _ in facts.dags.values()))


def all_params(facts: Facts) -> set[str]:
    return set().union(*(set(params) for _, params in facts.dags.values()))


# --------------------------------------------------------------------------------------------------
# Commands


def shell_commands(body: str) -> Iterator[list[str]]:
    """Simple commands of a shell snippet: continuation lines joined, comments dropped, split at
    `;`, `&&`, `||`, `|`, `&`, `(`, `)` and shell keywords."""
    joined = re.sub(r"\\\n", " ", body)
    for line in joined.splitlines():
        try:
            lex = shlex.shlex(line, posix=True, punctuation_chars=True)
            lex.whitespace_split = True
            lex.commenters = "#"
            tokens = list(lex)
        except ValueError:
            tokens = line.split()
        command: list[str] = []
        for token in tokens:
            if set(token) <= set(";&|()<>"):
                if command:
                    yield command
                command = []
            elif not command and token in ("do", "then", "else", "sudo", "exec", "time", "!"):
                continue
            else:
                command.append(token)
        if command:
            yield command


def split_extra(words: list[str]) -> tuple[list[str], list[str]]:
    """Arguments before and after a `--` separator."""
    return (words[: words.index("--")], words[words.index("--") + 1 :]) if "--" in words else (words, [])


def unknown_flags(words: list[str], allowed: set[str] | frozenset[str]) -> list[str]:
    """`--flags` among `words` (also `--flag=value` and `[--flag`) that `allowed` does not have."""
    flags = [w.strip("[]").split("=", 1)[0] for w in words]
    return [f for f in flags if FLAG.fullmatch(f) and f not in allowed]


def check_command(tokens: list[str], facts: Facts) -> list[str]:
    """Problems in one command line that runs a project CLI (others are ignored)."""
    i = 0
    while i < len(tokens) and re.match(r"^[A-Z][A-Z0-9_]*=", tokens[i]):
        i += 1
    if i >= len(tokens):
        return []
    prog, rest = tokens[i], tokens[i + 1 :]
    problems: list[str] = []

    def flags_in(words: list[str], allowed: set[str] | frozenset[str], what: str) -> None:
        problems.extend(f"{flag} is not a flag of {what}" for flag in unknown_flags(words, allowed))

    if re.search(r"(^|/)python3?(\.\d+)?$", prog):
        if rest[:1] == ["-m"] and len(rest) > 1:
            module, args = rest[1], rest[2:]
            if not module.startswith("sentiment_mlops."):
                return []
            name = module.removeprefix("sentiment_mlops.")
            path = module_path(name)
            if not path.is_file():
                return [f"module {module} does not exist"]
            if "__main__" not in path.read_text(encoding="utf-8"):
                return [f"module {module} has no command line (__main__)"]
            if name in DATAPROC_CLIS:
                args, extra = split_extra(args)
                kind = next((a.split("=", 1)[1] for a in args if a.startswith("--kind=")), None)
                if kind is None and "--kind" in args and args.index("--kind") + 1 < len(args):
                    kind = args[args.index("--kind") + 1]
                job_flags = {"training": facts.training_flags, "serving": facts.serving_flags}.get(kind or "")
                if job_flags is not None:
                    flags_in(extra, job_flags, f"the {kind} job")
                allowed: set[str] | frozenset[str] = facts.dataproc_flags
            else:
                job_clis = {"training.job": facts.training_flags, "serving.job": facts.serving_flags}
                allowed = job_clis.get(name, source_flags(path) | {"--help"})
            flags_in(args, allowed, module)
            return problems
        script = next((w for w in rest if not w.startswith("-")), None)
        if script is None or not script.endswith(".py"):
            return []
        return check_script(script, rest[rest.index(script) + 1 :], facts)
    if prog.startswith("-"):  # the continuation of a command shown in parts
        return []
    if prog == "sentiment-jobs":
        if not rest:
            return []
        if rest[0] not in facts.jobs_subcommands:
            return [f"`sentiment-jobs {rest[0]}` is not a subcommand"]
        flags_in(rest[1:], facts.jobs_subcommands[rest[0]], f"sentiment-jobs {rest[0]}")
        return problems
    if prog.endswith((".sh", ".py")) and not prog.startswith("$"):
        return check_script(prog, rest, facts)
    if prog == "airflow":
        return check_airflow(rest, facts)
    return []


def check_script(script: str, args: list[str], facts: Facts) -> list[str]:
    rel = script.removeprefix("./")
    path = ROOT / rel
    if rel.startswith(("/", "~", "$")):
        return []
    if not path.is_file():
        return [f"script {script} does not exist"]
    if path.name == "sentiment_multimodel.py":
        allowed, extra_allowed = facts.training_flags, None
    elif path.name.startswith("streaming_serving_mlflow_hdfs_kafka"):
        allowed, extra_allowed = facts.serving_flags, None
    else:
        allowed = source_flags(path) | {"--help"}
        extra_allowed = {"train-model.sh": facts.training_flags, "deploy-serving.sh": facts.serving_flags}.get(
            path.name
        )
    main, extra = split_extra(args)
    problems = [f"{flag} is not a flag of {rel}" for flag in unknown_flags(main, allowed)]
    if extra_allowed is not None:
        problems += [
            f"{flag} (after --) is not a flag of the job {rel} submits" for flag in unknown_flags(extra, extra_allowed)
        ]
    return problems


def check_airflow(args: list[str], facts: Facts) -> list[str]:
    problems: list[str] = []
    if args[:1] == ["dags"] and len(args) > 2 and args[1] in ("test", "trigger", "unpause", "pause", "show"):
        dag_id = args[2]
        if dag_id in ("DAG_ID", "ID"):
            return []
        if dag_id not in facts.dags:
            return [f"DAG {dag_id} does not exist"]
        for flag in ("--conf", "-c"):
            if flag in args and args.index(flag) + 1 < len(args):
                conf = json.loads(args[args.index(flag) + 1])
                unknown = sorted(set(conf) - set(facts.dags[dag_id][1]))
                if unknown:
                    problems.append(f"--conf keys {unknown} are not params of {dag_id}")
    if args[:2] == ["variables", "set"] and len(args) > 2 and args[2] not in facts.variables:
        problems.append(f"Airflow Variable {args[2]} does not exist")
    return problems


COMMAND_START = re.compile(
    r"^(?:[A-Z][A-Z0-9_]*=\S+\s+)*(?:\./|\.venv/bin/)?(python3?|sentiment-jobs|airflow|ci-cd/|scripts/|airflow/\w+\.sh|"
    r"test_dataproc\.sh|run_\w+\.sh|code/|bench/)"
)


def commands_of(doc: Doc) -> Iterator[tuple[int, list[str]]]:
    for line, lang, body in doc.blocks:
        if lang in SHELL_LANGS:
            for command in shell_commands(body):
                yield line, command
    for line, span in doc.inline:
        if COMMAND_START.match(span):
            for command in shell_commands(span):
                yield line, command


# --------------------------------------------------------------------------------------------------
# Tests


def test_commands_use_existing_clis_flags_dags_and_variables(docs: list[Doc], facts: Facts) -> None:
    problems = []
    for doc in docs:
        for line, command in commands_of(doc):
            problems += [f"{doc.where(line)}: {p} ({' '.join(command)[:120]})" for p in check_command(command, facts)]
    assert not problems, "\n".join(problems)


def heading_at(doc: Doc, line: int) -> str:
    above = [text for n, text in doc.headings if n <= line]
    return above[-1].lower() if above else ""


def test_inline_flags_belong_to_the_cli_in_context(docs: list[Doc], facts: Facts) -> None:
    """A backticked `--flag` that is not part of a command: in the serving DAGs doc and under headings
    about training or serving it must be that job's flag; elsewhere some project CLI's flag."""
    problems = []
    for doc in docs:
        for line, span in doc.inline:
            if COMMAND_START.match(span) or span.startswith(("gcloud", "gsutil", "docker", "mlflow", "curl")):
                continue
            heading = heading_at(doc, line)
            if doc.path.endswith("SERVING_DAGS_README.md") or re.search(r"serving|streaming", heading):
                allowed, what = facts.serving_flags, "the serving job"
            elif "training" in heading:
                allowed, what = facts.training_flags, "the training job"
            else:
                allowed, what = facts.all_flags, "any project CLI"
            problems += [
                f"{doc.where(line)}: {f} is not a flag of {what}" for f in FLAG.findall(span) if f not in allowed
            ]
    assert not problems, "\n".join(problems)


def test_dag_ids_and_metric_names_exist(docs: list[Doc], facts: Facts) -> None:
    problems = []
    others = non_dag_names()
    for doc in docs:
        texts = [*doc.inline, *doc.headings, *((line, body) for line, _lang, body in doc.blocks)]
        for line, text in texts:
            for name in re.findall(r"(?<![\w./-])sentiment_[a-z_]+(?![\w.])", text):
                if name == "sentiment_mlops" or name in facts.dags or name in facts.metrics or name in others:
                    continue
                if name.endswith("_") and any(m.startswith(name) for m in facts.metrics):
                    continue  # a metric name prefix: `sentiment_online_*`
                problems.append(f"{doc.where(line)}: {name}")
    assert not problems, "unknown DAG ids or metric names:\n" + "\n".join(problems)


def test_task_tables_and_chains(docs: list[Doc], facts: Facts) -> None:
    problems = []
    tasks_anywhere = all_task_ids(facts)
    for doc in docs:
        for table in doc.tables:
            if table.header[0].lower() not in ("task id", "task"):
                continue
            if table.dag is None:
                problems.append(f"{doc.where(table.line)}: task table without a DAG id in the heading above")
                continue
            dag_tasks = facts.dags[table.dag][0]
            listed = {first_code(row[0]) for row in table.rows} - {None}
            problems += [f"{doc.where(table.line)}: {t} is not a task of {table.dag}" for t in listed - dag_tasks]
            problems += [f"{doc.where(table.line)}: task {t} of {table.dag} missing" for t in dag_tasks - listed]
        for line, _lang, body in doc.blocks:
            for k, text in enumerate(body.splitlines()):
                if "->" not in text:
                    continue
                items = [i.strip() for part in text.split("->") for i in part.strip(" []").split(",")]
                items = [i for i in items if i]
                if items and all(CHAIN_ITEM.match(i) for i in items):
                    problems += [
                        f"{doc.where(line + k)}: {i} is not a task id" for i in items if i not in tasks_anywhere
                    ]
    assert not problems, "\n".join(problems)


def _json_default(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def test_param_tables_and_mentions(docs: list[Doc], facts: Facts) -> None:
    problems = []
    params_anywhere = all_params(facts)
    for doc in docs:
        for table in doc.tables:
            if table.header[0].lower() != "param":
                continue
            if table.dag is None:
                problems.append(f"{doc.where(table.line)}: param table without a DAG id in the heading above")
                continue
            params = facts.dags[table.dag][1]
            listed = {}
            for row in table.rows:
                name = first_code(row[0])
                listed[name] = row
                if name not in params:
                    problems.append(f"{doc.where(table.line)}: {name} is not a param of {table.dag}")
                elif len(row) > 1 and table.header[1].lower() == "default" and first_code(row[1]) is not None:
                    if first_code(row[1]) != _json_default(params[name]):
                        problems.append(
                            f"{doc.where(table.line)}: default of {table.dag}.{name} is "
                            f"{_json_default(params[name])}, the doc says {first_code(row[1])}"
                        )
            problems += [
                f"{doc.where(table.line)}: param {p} of {table.dag} missing" for p in set(params) - set(listed)
            ]
        for line, text in doc.prose:
            for group in re.findall(r"\bparams? ((?:`\w+`(?:,\s*| and | or )?)+)", text):
                problems += [f"{doc.where(line)}: param {p}" for p in code_spans(group) if p not in params_anywhere]
    assert not problems, "\n".join(problems)


def test_airflow_variables(docs: list[Doc], facts: Facts) -> None:
    from sentiment_mlops.orchestration import config as ac

    defaults = ac.AirflowConfig()
    field_of = {var: f for f, var in ac._FIELD_VARIABLES.items()}
    monitoring = monitoring_defaults()
    enums = {ac.VAR_BACKEND: ac.BACKENDS, ac.VAR_DEPLOY_MODE: ac.DEPLOY_MODES, ac.VAR_SOURCE_TYPE: ac.SOURCE_TYPES}
    problems = []
    readme_table: set[str] = set()
    for doc in docs:
        for table in doc.tables:
            if table.header[0].lower() != "variable":
                continue
            for row in table.rows:
                var = first_code(row[0])
                if var not in facts.variables:
                    problems.append(f"{doc.where(table.line)}: Variable {var} does not exist")
                    continue
                if doc.path == "README.md":
                    readme_table.add(var)
                column = table.header[1].lower() if len(table.header) > 1 else ""
                value = first_code(row[1]) if len(row) > 1 else None
                if column == "default":
                    expected = getattr(defaults, field_of[var]) if var in field_of else monitoring.get(var)
                    if isinstance(expected, float) and value is not None and re.fullmatch(r"[\d.]+", value):
                        value = str(float(value))
                    if value is None and expected is not None:
                        problems.append(f"{doc.where(table.line)}: {var} default should be {expected}")
                    elif value is not None and value.replace("{GCS_BUCKET}", ac.DEFAULT_BUCKET) != str(expected):
                        problems.append(f"{doc.where(table.line)}: {var} default is {expected}, the doc says {value}")
                elif "setup_local" in column:
                    expected = ac.LOCAL_DEFAULT_VARIABLES.get(var)
                    if value != expected:
                        problems.append(f"{doc.where(table.line)}: setup_local.sh sets {var}={expected}, doc: {value}")
                allowed_col = [k for k, h in enumerate(table.header) if h.lower().startswith("allowed")]
                if var in enums and allowed_col:
                    shown = set(code_spans(row[allowed_col[0]]))
                    if shown != set(enums[var]):
                        problems.append(f"{doc.where(table.line)}: {var} allows {enums[var]}, the doc says {shown}")
        for line, span in doc.inline:
            name, _, value = span.partition("=")
            looks_like_var = re.fullmatch(r"serving_[a-z_]+|kafka_[a-z_]+_(?:topic|servers)", name)
            if looks_like_var and name not in facts.variables and not module_path(name).is_file():
                problems.append(f"{doc.where(line)}: {name} is not an Airflow Variable")
            if name in enums and value and " " not in value and value not in enums[name]:
                problems.append(f"{doc.where(line)}: {span}: allowed {enums[name]}")
        for line, text in doc.prose:
            for group in re.findall(r"\bVariables? ((?:`[^`]+`(?:,\s*| and | or )?)+)", text):
                for span in code_spans(group):
                    if span.partition("=")[0] not in facts.variables:
                        problems.append(f"{doc.where(line)}: Variable {span}")
    missing = facts.variables - readme_table
    if missing:
        problems.append(f"README.md Variables table misses {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_all_caps_names_exist_in_the_code(docs: list[Doc], facts: Facts) -> None:
    problems = []
    for doc in docs:
        spans = list(doc.inline)
        for line, lang, body in doc.blocks:
            if lang in SHELL_LANGS:  # environment assignments of commands: NAME=value ...
                spans += [(line, m) for m in re.findall(r"(?:^|\s|export\s)([A-Z][A-Z0-9_]*)=", body)]
        for line, span in spans:
            for name in ALL_CAPS.findall(span):
                if name not in facts.corpus_names and name not in EXTERNAL_NAMES:
                    problems.append(f"{doc.where(line)}: {name}")
    assert not problems, "ALL_CAPS names the code does not know:\n" + "\n".join(problems)


@cache
def repo_file_names() -> frozenset[str]:
    skip = {".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".airflow-home", "build"}
    names = set()
    for _dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in skip and not d.endswith(".egg-info")]
        names.update(filenames)
    return frozenset(names)


def _is_repo_path(token: str) -> bool:
    token = token.removeprefix("./")
    if re.search(r"[\s{}<>*$~]|\.\.\.|://|^/", token) or token.startswith("../"):
        return False
    parts = [p for p in token.split("/") if p]
    if not parts or any(p.startswith(".") and p != ".github" for p in parts):
        return False
    if parts[0] in ROOT_ENTRIES and (len(parts) > 1 or token.endswith("/")):
        return True
    return len(parts) == 1 and bool(re.fullmatch(r"[\w.-]+\.(sh|toml|txt)|[A-Z_]+\.md", parts[0]))


GENERATED_OUTPUT = ("bench/results",)


def test_referenced_paths_and_links_exist(docs: list[Doc]) -> None:
    problems = []
    for doc in docs:
        base = (ROOT / doc.path).parent
        for line, span in doc.inline:
            for token in span.split():
                if _is_repo_path(token):
                    rel = token.removeprefix("./")
                    if rel.startswith(GENERATED_OUTPUT):
                        continue  # written by a run (git-ignored): absent from a fresh clone
                    if not (ROOT / rel).exists() and not (base / rel).exists():
                        problems.append(f"{doc.where(line)}: {token}")
                elif re.fullmatch(r"[\w-]+\.(sh|py)", token) and token not in repo_file_names():
                    problems.append(f"{doc.where(line)}: {token}")
        for line, text in doc.prose:
            for target in re.findall(r"\]\(([^)\s]+)\)", text):
                if re.match(r"^[a-z]+://", target):
                    continue
                path_part, _, anchor = target.partition("#")
                dest = (base / path_part).resolve() if path_part else ROOT / doc.path
                if not dest.exists():
                    problems.append(f"{doc.where(line)}: link {target}")
                elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                    problems.append(f"{doc.where(line)}: link anchor {target}")
    assert not problems, "missing files or links:\n" + "\n".join(problems)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return anchors


def test_modules_and_their_names_exist(docs: list[Doc]) -> None:
    from sentiment_mlops.jobs import PACKAGE_ZIP

    problems = []
    for doc in docs:
        for line, text in [*doc.prose, *((line, body) for line, _lang, body in doc.blocks)]:
            for dotted in re.findall(r"sentiment_mlops\.([A-Za-z_][\w.]*\w)", text):
                if f"sentiment_mlops.{dotted}" == PACKAGE_ZIP:
                    continue
                found = split_module_attr(dotted)
                if found is None:
                    problems.append(f"{doc.where(line)}: module sentiment_mlops.{dotted}")
                    continue
                module, attr = found
                source = module_path(module).read_text(encoding="utf-8")
                if attr and not re.search(rf"^(?:def |class )?{attr}\b", source, re.M):
                    problems.append(f"{doc.where(line)}: sentiment_mlops.{module}.{attr}")
    assert not problems, "\n".join(problems)


def test_sentiment_jobs_subcommands_exist(docs: list[Doc], facts: Facts) -> None:
    problems = []
    for doc in docs:
        for line, text in [*doc.inline, *((line, body) for line, _lang, body in doc.blocks)]:
            problems += [
                f"{doc.where(line)}: sentiment-jobs {sub}"
                for sub in re.findall(r"sentiment-jobs (\w+)", text)
                if sub not in facts.jobs_subcommands
            ]
    assert not problems, "\n".join(problems)


def test_mlflow_and_bucket_names_follow_the_code(docs: list[Doc]) -> None:
    from sentiment_mlops import jobs
    from sentiment_mlops.core.settings import DEFAULT_EXPERIMENT, DEFAULT_REGISTERED_MODEL_NAME
    from sentiment_mlops.orchestration.tasks.training import CV_EXPERIMENT
    from sentiment_mlops.registry import lookups as registry
    from sentiment_mlops.training.model_catalog import MODEL_SPECS

    models = {DEFAULT_REGISTERED_MODEL_NAME} | {
        registry.registered_name(DEFAULT_REGISTERED_MODEL_NAME, k) for k in [*MODEL_SPECS, registry.BEST_SUFFIX]
    }
    experiments = {DEFAULT_EXPERIMENT, CV_EXPERIMENT}
    suffixes = {name.removeprefix("b-") for name in jobs.bucket_names("b").values()}
    problems = []
    for doc in docs:
        for name in re.findall(r"twitter-sentiment-model(?:-[a-z]+)*", doc.text):
            if name not in models:
                problems.append(f"{doc.path}: registered model {name}")
        for name in re.findall(r"sentiment-analysis-pipeline(?:-[a-z]+)*", doc.text):
            if name not in experiments:
                problems.append(f"{doc.path}: experiment {name}")
        for suffix in re.findall(r"(?:\{GCS_BUCKET\}|\{b\}|my-bucket|sentiment-mlops)-([a-z][a-z-]*[a-z])", doc.text):
            if suffix not in suffixes:
                problems.append(f"{doc.path}: bucket suffix -{suffix}")
        for name in re.findall(r"models:/[\w-]+@([a-z]+)", doc.text):
            if name not in (registry.PRODUCTION_ALIAS, registry.CANDIDATE_ALIAS, "alias"):
                problems.append(f"{doc.path}: alias @{name}")
    gcp = next(d for d in docs if d.path.endswith("GCP_DATAPROC_SETUP.md"))
    problems += [f"GCP doc does not name bucket -{s}" for s in suffixes if f"{{GCS_BUCKET}}-{s}`" not in gcp.text]
    assert not problems, "\n".join(problems)


def test_spark_properties_table_matches_the_job_builder(docs: list[Doc]) -> None:
    from sentiment_mlops.jobs import STREAMING_PROPERTIES, TRAINING_PROPERTIES

    tables = [
        t for d in docs for t in d.tables if [h.lower() for h in t.header] == ["property", "training", "streaming"]
    ]
    assert tables, "no Property | Training | Streaming table"
    for table in tables:
        training, streaming = {}, {}
        for row in table.rows:
            key = first_code(row[0])
            if first_code(row[1]) is not None:
                training[key] = first_code(row[1])
            if first_code(row[2]) is not None:
                streaming[key] = first_code(row[2])
        assert training == TRAINING_PROPERTIES
        assert streaming == STREAMING_PROPERTIES


def test_xcom_keys_appear_in_the_task_code(docs: list[Doc]) -> None:
    source = "\n".join(
        p.read_text(encoding="utf-8")
        for p in [
            # the tasks, and the job summaries they return (core.job_backend, built by the backends)
            *(ROOT / "code" / "sentiment_mlops" / "orchestration").rglob("*.py"),
            ROOT / "code" / "sentiment_mlops" / "core" / "job_backend.py",
            *(ROOT / "code" / "sentiment_mlops" / "backends").rglob("*_backend.py"),
            *(ROOT / "airflow" / "dags").glob("*.py"),
        ]
    )
    problems = []
    for doc in docs:
        for table in doc.tables:
            columns = [k for k, h in enumerate(table.header) if h.lower() == "xcom"]
            for row in table.rows:
                for k in columns:
                    for key in code_spans(row[k]) if k < len(row) else []:
                        if re.fullmatch(r"[a-z_]+", key) and not re.search(rf'"{key}"|\b{key}=', source):
                            problems.append(f"{doc.where(table.line)}: XCom key {key}")
    assert not problems, "\n".join(problems)


def test_code_spans_stay_on_one_line(docs: list[Doc]) -> None:
    """A `code span` broken over two lines would escape every check above."""
    problems = [
        f"{doc.where(line)}: {text.strip()[:80]}" for doc in docs for line, text in doc.prose if text.count("`") % 2
    ]
    assert not problems, "unbalanced backticks (a code span across lines):\n" + "\n".join(problems)


def test_no_addresses_or_project_ids(docs: list[Doc]) -> None:
    problems = []
    for doc in docs:
        for ip in re.findall(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])", doc.text):
            if ip not in ("127.0.0.1", "0.0.0.0"):
                problems.append(f"{doc.path}: {ip}")
    assert not problems, "use placeholders (MLFLOW_VM_IP) instead of addresses:\n" + "\n".join(problems)

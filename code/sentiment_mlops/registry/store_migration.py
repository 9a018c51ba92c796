"""Move an embedded installation's MLflow store (SQLite file + local artifact folder) to the production
profile (PostgreSQL + the server's artifact destination) without losing a run, model version or alias.

    python -m sentiment_mlops.registry.store_migration \\
        --source sqlite:////HOME/mlflow/mlflow.db --source-artifacts /HOME/mlflow/artifacts \\
        --target postgresql+psycopg2://sentiment@127.0.0.1:5432/mlflow --target-artifacts gs://B-mlflow-artifacts

MLflow's own paths do the parts they can: `mlflow db upgrade` brings the SQLite store to the schema of
the installed MLflow, MLflow's SqlAlchemyStore creates the same schema in PostgreSQL, and MLflow's
artifact repositories copy the artifact folder to the destination. What MLflow has no command for,
copying the rows, is a table-by-table copy between the two identical schemas, so every id (experiment
ids, run ids, model versions, aliases, logged models) stays what it was. Artifact locations that pointed
into the old folder are rewritten to `mlflow-artifacts:/...`, served by the production server.

The target must hold no runs or registered models (a fresh production store); it is refused otherwise.
Stop the embedded server first so the SQLite file does not change during the copy.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROXY_SCHEME = "mlflow-artifacts:/"
_BATCH = 5000


class MigrationError(RuntimeError):
    pass


@dataclass
class MigrationReport:
    rows: dict[str, int] = field(default_factory=dict)
    model_versions: list[tuple[str, str]] = field(default_factory=list)
    aliases: list[tuple[str, str, str]] = field(default_factory=list)
    artifacts_copied_to: str = ""


def upgrade_schema(uri: str) -> None:
    """`mlflow db upgrade URI`: MLflow's migrations, so both stores have the same tables."""
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    result = subprocess.run(
        [str(mlflow_bin) if mlflow_bin.exists() else "mlflow", "db", "upgrade", uri],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise MigrationError(f"mlflow db upgrade {uri} failed: {result.stderr.strip()[-800:]}")


def _registry_view(engine: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    from sqlalchemy import text

    with engine.connect() as conn:
        versions = [(str(n), str(v)) for n, v in conn.execute(text("SELECT name, version FROM model_versions"))]
        aliases = [
            (str(n), str(a), str(v))
            for n, a, v in conn.execute(text("SELECT name, alias, version FROM registered_model_aliases"))
        ]
    return sorted(versions), sorted(aliases)


def _rewrite(value: Any, prefixes: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for prefix in prefixes:
            if value == prefix or value.startswith(prefix + "/"):
                return PROXY_SCHEME + value[len(prefix) :].lstrip("/")
    return value


def copy_rows(source_uri: str, target_uri: str, source_artifacts: Path | None) -> MigrationReport:
    import sqlalchemy as sa

    source = sa.create_engine(source_uri)
    target = sa.create_engine(target_uri)
    src_meta, dst_meta = sa.MetaData(), sa.MetaData()
    src_meta.reflect(source)
    dst_meta.reflect(target)
    with source.connect() as s, target.connect() as t:
        src_rev = s.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        dst_rev = t.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        if src_rev != dst_rev:
            raise MigrationError(f"schema revisions differ (source {src_rev}, target {dst_rev}): upgrade both")
        for name in ("runs", "registered_models"):
            if t.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar():  # noqa: S608 - fixed names
                raise MigrationError(f"the target store already holds {name}: migrate into a fresh database only")

    prefixes: tuple[str, ...] = ()
    if source_artifacts is not None:
        root = str(source_artifacts.resolve()).rstrip("/")
        prefixes = (f"file://{root}", root)
    report = MigrationReport()
    tables = [tb for tb in dst_meta.sorted_tables if tb.name != "alembic_version" and tb.name in src_meta.tables]
    with source.connect() as s, target.begin() as t:
        for table in reversed(tables):  # the fresh store's own rows (the Default experiment) go first
            t.execute(table.delete())
        for table in tables:
            src_table = src_meta.tables[table.name]
            columns = [c.name for c in table.columns if c.name in src_table.columns]
            booleans = {c.name for c in table.columns if isinstance(c.type, sa.Boolean)}
            count = 0
            result = s.execution_options(stream_results=True).execute(
                sa.select(*[src_table.c[name] for name in columns])
            )
            while batch := result.fetchmany(_BATCH):
                rows = []
                for row in batch:
                    values = dict(zip(columns, row, strict=True))
                    for name in booleans & values.keys():
                        if values[name] is not None:
                            values[name] = bool(values[name])
                    rows.append({k: _rewrite(v, prefixes) for k, v in values.items()})
                t.execute(table.insert(), rows)
                count += len(rows)
            report.rows[table.name] = count
        for table in tables:  # serial ids continue after the copied ones
            for column in table.columns:
                seq = t.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name})
                sequence = seq.scalar()
                if sequence:
                    top = f'SELECT MAX("{column.name}") FROM "{table.name}"'  # noqa: S608 - reflected names
                    t.execute(sa.text(f"SELECT setval(:s, COALESCE(({top}), 0) + 1, false)"), {"s": sequence})
    src_view, dst_view = _registry_view(source), _registry_view(target)
    if src_view != dst_view:
        raise MigrationError(f"registry differs after the copy: source {src_view}, target {dst_view}")
    report.model_versions, report.aliases = dst_view
    return report


def copy_artifacts(source_artifacts: Path, destination: str) -> None:
    """The old artifact folder into the server's destination, with MLflow's artifact repository for it
    (a folder, gs://, s3://...). A missing bucket fails here, before any row is copied."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    if not source_artifacts.is_dir():
        raise MigrationError(f"source artifact folder {source_artifacts} does not exist")
    try:
        get_artifact_repository(destination).log_artifacts(str(source_artifacts))  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise MigrationError(f"cannot copy artifacts to {destination}: {exc}") from exc


def migrate(
    source_uri: str, target_uri: str, source_artifacts: Path | None, target_artifacts: str | None
) -> MigrationReport:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    upgrade_schema(source_uri)
    try:
        SqlAlchemyStore(target_uri, PROXY_SCHEME)  # type: ignore[no-untyped-call]  # creates (or upgrades) the target's schema
    except Exception as exc:
        raise MigrationError(f"cannot open the target store {target_uri}: {exc}") from exc
    if source_artifacts is not None and target_artifacts:
        copy_artifacts(source_artifacts, target_artifacts)
    report = copy_rows(source_uri, target_uri, source_artifacts if target_artifacts else None)
    report.artifacts_copied_to = target_artifacts or ""
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="copy an embedded MLflow store into the production profile")
    parser.add_argument("--source", required=True, help="sqlite:////HOME/mlflow/mlflow.db")
    parser.add_argument("--source-artifacts", type=Path, help="the embedded artifact folder (HOME/mlflow/artifacts)")
    parser.add_argument("--target", required=True, help="postgresql+psycopg2://sentiment@127.0.0.1:5432/mlflow")
    parser.add_argument("--target-artifacts", help="the production server's --artifacts-destination")
    args = parser.parse_args(argv)
    try:
        report = migrate(args.source, args.target, args.source_artifacts, args.target_artifacts)
    except MigrationError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(f"copied rows: {', '.join(f'{k}={v}' for k, v in report.rows.items() if v)}")
    aliases = ", ".join(f"{n}@{a}=v{v}" for n, a, v in report.aliases)
    print(f"model versions: {len(report.model_versions)}, aliases: {aliases}")
    if report.artifacts_copied_to:
        print(f"artifacts copied to {report.artifacts_copied_to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The production profile's PostgreSQL: Debian's PostgreSQL 15 server, started by us on 127.0.0.1 with
its own data folder, as the metadata DB of Airflow and the stores of MLflow (tracking/registry, auth).

    python -m sentiment_mlops.backends.local.postgres start | stop | status | uri DATABASE

PostgreSQL refuses to run as root: when we are root the server runs as SENTIMENT_POSTGRES_OS_USER
(default `postgres`, the unprivileged user Debian's package creates) through `runuser`; otherwise as
the current user. Passwords are generated on first start and kept in SENTIMENT_HOME/secrets (0600):
`postgres-superuser.password`, `postgres-sentiment.password` and `pgpass`, the libpq password file
that Airflow, MLflow and psycopg2 read through PGPASSFILE, so no connection URI holds a password.
"""

from __future__ import annotations

import argparse
import os
import pwd
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment_mlops.backends.local.services import ServiceError, port_in_use
from sentiment_mlops.core.secret_files import read_or_create_secret, read_secret, write_private
from sentiment_mlops.core.settings import (
    AIRFLOW_DATABASE,
    MLFLOW_AUTH_DATABASE,
    MLFLOW_DATABASE,
    POSTGRES_ROLE,
    Settings,
    load_settings,
)

DEFAULT_BIN_DIR = "/usr/lib/postgresql/15/bin"
HOST = "127.0.0.1"
SUPERUSER = "postgres"
DATABASES = (AIRFLOW_DATABASE, MLFLOW_DATABASE, MLFLOW_AUTH_DATABASE)


def bin_dir() -> Path:
    return Path(os.environ.get("SENTIMENT_POSTGRES_BIN", DEFAULT_BIN_DIR))


def pgpass_file(settings: Settings) -> Path:
    return settings.secrets_dir / "pgpass"


def database_uri(settings: Settings, database: str, driver: str = "postgresql+psycopg2") -> str:
    """A password-free URI; libpq takes the password from PGPASSFILE (see `client_env`). The driver is
    explicit: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which we do not install."""
    return f"{driver}://{POSTGRES_ROLE}@{settings.postgres_host}:{settings.postgres_port}/{database}"


def _missing_traversal(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The first ancestor of `path` that `user` cannot enter (no x bit for it), if any."""
    for folder in reversed(path.parents):
        st = folder.stat()
        if st.st_uid == user.pw_uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == user.pw_gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return folder
    return None


@dataclass
class PostgresServer:
    settings: Settings

    @property
    def folder(self) -> Path:
        return self.settings.postgres_dir

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_file(self) -> Path:
        return self.folder / "postgres.log"

    @property
    def port(self) -> int:
        return self.settings.postgres_port

    def _os_user(self) -> pwd.struct_passwd | None:
        """The user the server runs as when we are root; None: run as ourselves."""
        if os.geteuid() != 0:
            return None
        name = self.settings.postgres_os_user
        try:
            return pwd.getpwnam(name)
        except KeyError:
            raise ServiceError(
                f"OS user {name!r} for PostgreSQL does not exist (PostgreSQL refuses root): create it with "
                f"`useradd --system --no-create-home {name}` or set SENTIMENT_POSTGRES_OS_USER"
            ) from None

    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        tool = bin_dir() / args[0]
        if not tool.exists():
            raise ServiceError(
                f"PostgreSQL 15 server binaries not found ({tool}): install Debian's postgresql-15 "
                f"(scripts/install_test_services.sh) or set SENTIMENT_POSTGRES_BIN"
            )
        user = self._os_user()
        command = [str(tool), *args[1:]]
        if user is not None:
            command = ["runuser", "-u", user.pw_name, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, cwd="/")
        if check and result.returncode != 0:
            raise ServiceError(
                f"{args[0]} failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-800:]}"
            )
        return result

    def _prepare_folder(self) -> None:
        user = self._os_user()
        self.folder.mkdir(parents=True, exist_ok=True)
        if user is None:
            self.folder.chmod(0o700)
            return
        blocked = _missing_traversal(self.folder, user)
        if blocked is not None:
            raise ServiceError(
                f"PostgreSQL runs as OS user {user.pw_name!r}, which cannot enter {blocked} (mode "
                f"{blocked.stat().st_mode & 0o777:o}) on the way to {self.folder}: set SENTIMENT_POSTGRES_DIR to "
                f"a folder it can reach (e.g. /var/lib/sentiment-postgres) or `chmod o+x {blocked}`"
            )
        os.chown(self.folder, user.pw_uid, user.pw_gid)
        self.folder.chmod(0o700)

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def initialize(self) -> None:
        """initdb once: scram-sha-256 for every connection, superuser `postgres` with a generated password."""
        self._prepare_folder()
        if self.initialized():
            return
        password = read_or_create_secret(self.settings.secrets_dir / "postgres-superuser.password")
        user = self._os_user()
        # initdb reads the password from a file the server's user can open; it lives for initdb only.
        pwfile = self.folder / ".initdb-password"
        write_private(pwfile, password + "\n")
        self.folder.chmod(0o700)
        if user is not None:
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def running(self) -> bool:
        if not self.initialized():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.data_dir), check=False).returncode == 0

    def _require_local(self) -> None:
        if not self.settings.postgres_is_local:
            raise ServiceError(
                f"SENTIMENT_POSTGRES_HOST={self.settings.postgres_host} is a server run elsewhere: start and stop it "
                f"there (`python -m sentiment_mlops.backends.local.profile secrets` writes the client files)"
            )

    def start(self, timeout: int = 60) -> PostgresServer:
        self._require_local()
        self.initialize()
        if not self.running():
            if port_in_use(self.port, HOST):
                raise ServiceError(
                    f"port {self.port} on {HOST} is taken by another program; set SENTIMENT_POSTGRES_PORT"
                )
            options = f"-c listen_addresses={HOST} -p {self.port} -c unix_socket_directories=''"
            result = self._run(
                "pg_ctl",
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(timeout),
                "-o",
                options,
                check=False,
                timeout=timeout + 30,
            )
            if result.returncode != 0:
                raise ServiceError(f"PostgreSQL did not start ({result.stdout.strip()[-300:]}); see {self.log_file}")
        self.ensure_databases()
        return self

    def stop(self) -> None:
        self._require_local()
        if self.running():
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")

    def ensure_databases(self) -> None:
        """The role `sentiment` (generated password, not a superuser) owning our three databases, and
        the pgpass file that lets clients log in as it."""
        password = read_or_create_secret(self.settings.secrets_dir / "postgres-sentiment.password")
        superuser_password = read_secret(self.settings.secrets_dir / "postgres-superuser.password")
        with connect(self.settings, "postgres", user=SUPERUSER, password=superuser_password) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (POSTGRES_ROLE,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                cur.execute(f'{verb} ROLE "{POSTGRES_ROLE}" LOGIN PASSWORD %s', (password,))
                for database in DATABASES:
                    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                    if not cur.fetchone():
                        cur.execute(f'CREATE DATABASE "{database}" OWNER "{POSTGRES_ROLE}"')
        write_pgpass(self.settings, password)


def write_pgpass(settings: Settings, password: str) -> None:
    """libpq's password file for our role on the profile's server (read through PGPASSFILE)."""
    line = f"{settings.postgres_host}:{settings.postgres_port}:*:{POSTGRES_ROLE}:{password}\n"
    write_private(pgpass_file(settings), line)


@contextmanager
def connect(settings: Settings, database: str, user: str = POSTGRES_ROLE, password: str | None = None) -> Iterator[Any]:
    """A psycopg2 connection, with the two set-up mistakes turned into errors that say what to do."""
    import psycopg2

    kwargs: dict[str, Any] = {
        "host": settings.postgres_host,
        "port": settings.postgres_port,
        "dbname": database,
        "user": user,
    }
    if password is None:
        kwargs["passfile"] = str(pgpass_file(settings))
    else:
        kwargs["password"] = password
    try:
        conn = psycopg2.connect(connect_timeout=5, **kwargs)
    except psycopg2.OperationalError as exc:
        raise connection_error(settings, exc) from None
    try:
        yield conn
    finally:
        conn.close()


def connection_error(settings: Settings, exc: Exception) -> ServiceError:
    text = str(exc)
    where = f"PostgreSQL at {settings.postgres_host}:{settings.postgres_port}"
    if "Connection refused" in text or "could not connect" in text:
        return ServiceError(
            f"{where} is not running: start it with `python -m sentiment_mlops.backends.local.postgres start` "
            f"(airflow/start_services.sh does, with SENTIMENT_PROFILE=production)"
        )
    if "password authentication failed" in text or "no password supplied" in text:
        return ServiceError(
            f"{where} refused the password: the role's password does not match {pgpass_file(settings)} "
            f"(run `python -m sentiment_mlops.backends.local.postgres start` to reset it from the secrets folder)"
        )
    if "does not exist" in text:
        return ServiceError(f"{where}: {text.strip()} (`... postgres start` creates the profile's databases)")
    return ServiceError(f"{where}: {text.strip()}")


def check_database(settings: Settings, database: str) -> None:
    with connect(settings, database) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the production profile's PostgreSQL (127.0.0.1)")
    parser.add_argument("action", choices=("start", "stop", "status", "uri"))
    parser.add_argument("database", nargs="?", default=MLFLOW_DATABASE, choices=DATABASES)
    args = parser.parse_args(argv)
    settings = load_settings()
    server = PostgresServer(settings)
    try:
        if args.action == "start":
            server.start()
            print(f"PostgreSQL up at {HOST}:{server.port} (data: {server.data_dir}, log: {server.log_file})")
        elif args.action == "stop":
            server.stop()
            print(f"PostgreSQL on port {server.port} stopped")
        elif args.action == "uri":
            print(database_uri(settings, args.database))
        else:
            check_database(settings, args.database)
            print(f"PostgreSQL at {HOST}:{server.port}: database {args.database} answers")
    except ServiceError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

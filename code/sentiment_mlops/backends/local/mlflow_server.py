"""The local backend's MLflow tracking server, one worker. Embedded profile (default): SQLite store and
a local artifact root that clients write to directly. Production profile (SENTIMENT_PROFILE=production,
see backends.local.profile): PostgreSQL stores, `--app-name basic-auth`, artifacts proxied by the server
to SENTIMENT_MLFLOW_ARTIFACTS_DESTINATION (a folder or gs://BUCKET).

python -m sentiment_mlops.backends.local.mlflow_server start [--port 5000]
python -m sentiment_mlops.backends.local.mlflow_server status | stop
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sentiment_mlops.backends.local.services import ServiceError, free_port, healthy, port_in_use
from sentiment_mlops.core.processes import cmdline
from sentiment_mlops.core.settings import DEFAULT_MLFLOW_PORT, Settings, load_settings

__all__ = ["MlflowServer", "ServiceError", "free_port", "healthy", "port_in_use", "server_for"]


@dataclass
class MlflowServer:
    data_dir: Path
    port: int = DEFAULT_MLFLOW_PORT
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    settings: Settings | None = None

    @property
    def production(self) -> bool:
        return self.settings is not None and self.settings.profile == "production"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / f"mlflow-{self.port}.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / f"mlflow-{self.port}.log"

    def command(self) -> list[str]:
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        if self.production and self.settings is not None:
            from sentiment_mlops.backends.local import profile

            store = profile.mlflow_store_args(self.settings)
        else:
            store = [
                "--backend-store-uri",
                f"sqlite:///{self.data_dir / 'mlflow.db'}",
                # Clients write artifacts straight to this folder: same machine, no proxy hop.
                "--default-artifact-root",
                str(self.data_dir / "artifacts"),
            ]
        return [
            str(mlflow_bin) if mlflow_bin.exists() else "mlflow",
            "server",
            *store,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]

    def server_env(self) -> dict[str, str]:
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        if self.production and self.settings is not None:
            from sentiment_mlops.backends.local import profile

            profile.check_prerequisites(self.settings)
            env.update(profile.mlflow_server_env(self.settings))
        else:
            (self.data_dir / "artifacts").mkdir(parents=True, exist_ok=True)
        return env

    def serve_foreground(self) -> None:
        """Become the server (a container's main process: docker-compose), after the same checks."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = self.server_env()
        command = self.command()
        os.execvpe(command[0], command, env)  # noqa: S606 - our own command line

    def start(self, timeout: float = 90.0) -> MlflowServer:
        if port_in_use(self.port, self.host):
            if healthy(self.url):
                raise ServiceError(
                    f"port {self.port} is taken by an MLflow server already ({self.url}); "
                    f"stop it or choose another --port"
                )
            raise ServiceError(f"port {self.port} on {self.host} is taken by another program; choose another --port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = self.server_env()
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.pid_file.write_text(str(self.process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"mlflow server exited with {self.process.returncode}; see {self.log_file}")
            if healthy(self.url):
                if self.production and self.settings is not None:
                    from sentiment_mlops.backends.local import profile

                    try:
                        profile.check_admin_login(self.url, self.settings)
                    except ServiceError:
                        self.stop()
                        raise
                return self
            time.sleep(0.5)
        self.stop()
        raise ServiceError(f"mlflow server did not answer {self.url}/health within {timeout:.0f}s; see {self.log_file}")

    def stop(self, timeout: float = 20.0) -> None:
        pid = self.process.pid if self.process else _read_pid(self.pid_file)
        if pid is not None and self.process is None and not _is_mlflow_server(pid, self.port):
            pid = None  # a stale pid file: with pid_max 32768 its number may belong to anything now
        if pid is not None:
            _kill_group(pid, timeout)
        self.pid_file.unlink(missing_ok=True)
        self.process = None


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_mlflow_server(pid: int, port: int) -> bool:
    """Guards against pid reuse: only signal a process whose command line is `mlflow server ... --port PORT`."""
    argv = cmdline(pid)
    if argv is None:
        return False
    return "server" in argv and "--port" in argv and str(port) in argv and any("mlflow" in a for a in argv[:3])


def _kill_group(pid: int, timeout: float) -> None:
    """SIGTERM the server's whole process group (uvicorn workers too), SIGKILL what is left."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.3)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def server_for(settings: Settings, port: int, host: str = "127.0.0.1") -> MlflowServer:
    return MlflowServer(data_dir=settings.mlflow_dir, port=port, host=host, settings=settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="local MLflow tracking server (SENTIMENT_PROFILE: embedded SQLite or production)"
    )
    parser.add_argument("action", choices=("start", "stop", "status", "serve"), help="serve: in the foreground")
    parser.add_argument("--host", default="127.0.0.1", help="serve only: 0.0.0.0 inside a container")
    parser.add_argument("--port", type=int, default=int(os.environ.get("MLFLOW_PORT", DEFAULT_MLFLOW_PORT)))
    args = parser.parse_args(argv)
    server = server_for(load_settings(), args.port, args.host if args.action == "serve" else "127.0.0.1")
    try:
        if args.action == "serve":
            server.serve_foreground()
        elif args.action == "start":
            server.start()
            print(
                f"MLflow tracking server ({server.settings.profile if server.settings else 'embedded'} profile) up at "
                f"{server.url} (data: {server.data_dir}, log: {server.log_file})"
            )
        elif args.action == "stop":
            server.stop()
            print(f"MLflow tracking server on port {args.port} stopped")
        else:
            ok = healthy(server.url)
            print(f"MLflow at {server.url}: {'healthy' if ok else 'not answering'}")
            return 0 if ok else 1
    except ServiceError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The local MLflow server script: health, a clear error when its port is taken, clean stop."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sentiment_mlops.backends.local.mlflow_server import MlflowServer, ServiceError, free_port, healthy, port_in_use


def test_running_server_is_healthy(mlflow_server: str) -> None:
    assert healthy(mlflow_server)


def test_port_taken_by_mlflow_is_a_clear_error(mlflow_server: str, tmp_path: Path) -> None:
    port = int(mlflow_server.rsplit(":", 1)[1])
    with pytest.raises(ServiceError, match="taken by an MLflow server already"):
        MlflowServer(data_dir=tmp_path, port=port).start()


def test_port_taken_by_another_program_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sentiment_mlops.backends.local.mlflow_server", "start", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    expected = f"ERROR: port {port} on 127.0.0.1 is taken by another program; choose another --port"
    assert result.stderr.strip() == expected


@pytest.mark.timeout(180)
def test_start_and_stop_free_the_port(tmp_path: Path) -> None:
    server = MlflowServer(data_dir=tmp_path / "mlflow", port=free_port()).start()
    assert healthy(server.url) and (tmp_path / "mlflow" / "mlflow.db").exists()
    server.stop()
    assert not port_in_use(server.port) and not server.pid_file.exists()


def test_stop_with_a_stale_pid_file_leaves_the_pid_s_new_owner_alone(tmp_path: Path) -> None:
    """After a crash the pid file outlives the server, and the number may belong to another program by
    now (pid_max is 32768 in many containers): `stop` must not kill that program's process group."""
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        port = free_port()
        (tmp_path / f"mlflow-{port}.pid").write_text(str(bystander.pid))
        MlflowServer(data_dir=tmp_path, port=port).stop(timeout=2)
        assert bystander.poll() is None
        assert not (tmp_path / f"mlflow-{port}.pid").exists()
    finally:
        bystander.kill()
        bystander.wait()

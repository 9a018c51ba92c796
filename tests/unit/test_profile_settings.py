"""The production profile's settings and files, without a server: one setting picks it, nothing in the
printed environment, the command lines or the URIs holds a password, and every secret file is 0600."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sentiment_mlops.backends.local import postgres, profile
from sentiment_mlops.backends.local.mlflow_server import MlflowServer, ServiceError
from sentiment_mlops.core.settings import Settings, load_settings


def test_one_setting_picks_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTIMENT_PROFILE", raising=False)
    assert load_settings().profile == "embedded"
    monkeypatch.setenv("SENTIMENT_PROFILE", "production")
    assert load_settings().profile == "production"
    monkeypatch.setenv("SENTIMENT_PROFILE", "prod")
    with pytest.raises(ValueError, match="unknown SENTIMENT_PROFILE 'prod'; allowed: embedded, production"):
        load_settings()


def test_no_password_in_commands_uris_or_printed_env(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, profile="production", postgres_host="postgres", postgres_port=6543)
    profile.write_client_secrets(settings)
    secrets = {p.name: p.read_text().strip() for p in settings.secrets_dir.iterdir()}
    assert set(secrets) == {"postgres-sentiment.password", "mlflow-admin.password", "mlflow-flask.secret", "pgpass"}
    for path in settings.secrets_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secrets["pgpass"] == f"postgres:6543:*:sentiment:{secrets['postgres-sentiment.password']}"

    command = " ".join(MlflowServer(data_dir=settings.mlflow_dir, settings=settings).command())
    assert "--app-name basic-auth --serve-artifacts --artifacts-destination" in command
    assert "postgresql+psycopg2://sentiment@postgres:6543/mlflow" in command
    printed = profile.shell_env(settings)
    assert 'MLFLOW_TRACKING_PASSWORD="$(cat ' in printed and "AIRFLOW__CORE__EXECUTOR=LocalExecutor" in printed
    for value in (secrets["postgres-sentiment.password"], secrets["mlflow-admin.password"]):
        assert value not in command and value not in printed
    assert profile.client_env(settings)["MLFLOW_TRACKING_PASSWORD"] == secrets["mlflow-admin.password"]


def test_a_server_run_elsewhere_is_not_started_here(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, profile="production", postgres_host="db.internal")
    with pytest.raises(ServiceError, match="SENTIMENT_POSTGRES_HOST=db.internal is a server run elsewhere"):
        postgres.PostgresServer(settings).start()


def test_a_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    from sentiment_mlops.core.secret_files import read_secret, write_private

    path = tmp_path / "s" / "x.password"
    write_private(path, "abc\n")
    assert read_secret(path) == "abc"
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="must be readable by its owner only"):
        read_secret(path)

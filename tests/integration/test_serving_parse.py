"""The serving job's command line: a bad argument is one clear line and exit code 2 (the parsing rules
themselves are in tests/unit/test_serving_parsing.py)."""

from __future__ import annotations


def test_serving_job_bad_arguments_are_one_line_errors(capsys) -> None:  # type: ignore[no-untyped-def]
    from sentiment_mlops.backends.local.mlflow_server import free_port
    from sentiment_mlops.serving import job as serving_job

    assert serving_job.main(["--output-path", "gs://o", "--checkpoint", "gs://c"]) == 2
    assert capsys.readouterr().err.strip() == "ERROR: --input-path is required with --source-type file"
    dead = f"http://127.0.0.1:{free_port()}"
    argv = ["--input-path", "gs://i", "--output-path", "gs://o", "--checkpoint", "gs://c", "--mlflow-uri", dead]
    assert serving_job.main(argv) == 2
    assert capsys.readouterr().err.strip().startswith(f"ERROR: MLflow tracking server unreachable at {dead}")
    assert serving_job.main([*argv[:6], "--batch-interval-seconds", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err

"""The Markdown reports and the completion message, from the plain dicts the tasks pass around
(training_summary.json, best-model info, monitoring records). No I/O here: the tasks write them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def fmt(value: Any, digits: int = 4) -> str:
    """A table cell: floats rounded to `digits`, None as `-`."""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def _best_model_section(best: dict) -> list[str]:
    return [
        "## Best model",
        "",
        "| Model type | Accuracy | AUC | Registered model | Version | MLflow run | From this run |",
        "|---|---|---|---|---|---|---|",
        f"| {best.get('model_type')} | {fmt(best.get('accuracy'))} | {fmt(best.get('auc'))} | "
        f"{fmt(best.get('registered_model'))} | {fmt(best.get('version'))} | `{best.get('run_id')}` | "
        f"{'yes' if best.get('from_this_run') else 'no'} |",
        "",
        f"Source: {best.get('source')}.",
        "",
    ]


def _variant_facts(summary: dict) -> list[str]:
    split = summary.get("split_counts") or {}
    lines = [
        f"- Input: `{summary.get('input')}`; output: `{summary.get('output')}`",
        f"- Rows: {(summary.get('load_report') or {}).get('rows_usable', '-')} usable; split "
        + ", ".join(f"{k} {v}" for k, v in split.items()),
        f"- MLflow parent run: `{summary.get('parent_run_id')}`; best: **{summary.get('best_model')}**",
    ]
    promotion = summary.get("promotion") or {}
    if promotion:
        verdict = "promoted" if promotion.get("promote") else "kept the current model"
        lines.append(
            f"- Promotion of {promotion.get('registered_model')} v{promotion.get('candidate_version')} "
            f"to @{promotion.get('alias')}: {verdict} ({promotion.get('reason')})"
        )
    return lines


def _metrics_table(models: dict[str, dict]) -> list[str]:
    lines = [
        "| Model | Val accuracy | Test accuracy | Test AUC | F1 | Precision | Recall | Fit (s) | Registered |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, m in models.items():
        test, val = m.get("test") or {}, m.get("validation") or {}
        lines.append(
            f"| {m.get('display_name', key)} | {fmt(val.get('accuracy'))} | {fmt(test.get('accuracy'))} | "
            f"{fmt(test.get('auc'))} | {fmt(test.get('f1'))} | {fmt(test.get('precision'))} | "
            f"{fmt(test.get('recall'))} | {fmt(m.get('fit_seconds'), 1)} | "
            f"{m.get('registered_model')} v{m.get('version')} |"
        )
    return lines


def _confusion_matrices(models: dict[str, dict]) -> list[str]:
    lines: list[str] = []
    for key, m in models.items():
        matrix = m.get("test_confusion_matrix")
        if not matrix:
            continue
        (tn, fp), (fn, tp) = matrix
        lines += [
            f"Confusion matrix, {m.get('display_name', key)} (test):",
            "",
            "| true \\ predicted | negative | positive |",
            "|---|---|---|",
            f"| negative | {tn} | {fp} |",
            f"| positive | {fn} | {tp} |",
            "",
        ]
    return lines


def _variant_section(variant: str, summary: dict | None) -> list[str]:
    lines = [f"## Variant `{variant}`", ""]
    if not summary:
        return [*lines, "No training_summary.json was written (the job failed or was skipped).", ""]
    models = summary.get("models") or {}
    return [*lines, *_variant_facts(summary), "", *_metrics_table(models), "", *_confusion_matrices(models)]


def training_report_markdown(run_tag: str, summaries: dict[str, dict | None], best: dict | None) -> str:
    """The training report of run `run_tag`: the best model (`best`, from best_model_info), then per
    variant (`summaries`: variant -> training_summary.json or None) its metrics table, confusion
    matrices and promotion decision."""
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    lines = [f"# Sentiment training report `{run_tag}`", "", f"Generated {generated}.", ""]
    if best:
        lines += _best_model_section(best)
    for variant, summary in summaries.items():
        lines += _variant_section(variant, summary)
    return "\n".join(lines).rstrip() + "\n"


def completion_message(dag_id: str, run_tag: str, validation: dict | None, best: dict | None, report: dict) -> str:
    """One line for the notification: the run, its input size, the best model and the report's URI."""
    parts = [f"{dag_id} run {run_tag} finished."]
    if validation:
        parts.append(f"Input {validation.get('input_path')}: about {validation.get('row_estimate')} rows.")
    if best:
        parts.append(
            f"Best model {best.get('model_type')} accuracy {fmt(best.get('accuracy'))} AUC {fmt(best.get('auc'))} "
            f"({best.get('registered_model') or 'not registered'} v{best.get('version') or '-'})."
        )
    parts.append(f"Report: {report.get('report_uri')}")
    return " ".join(parts)


def serving_message(backend: str, source_type: str, model: dict, deployment: dict, waited: dict | None) -> str:
    """The serving DAG's notification: the job's state and model (`model_to_serve`), or, in test mode
    (`deployment` not submitted), that nothing was submitted."""
    if deployment["submitted"]:
        return (
            f"Serving job {deployment['job_id']} is {(waited or {}).get('state')} on {backend} with "
            f"{model['name']} v{model['version']} ({model.get('model_type')}); source {source_type}."
        )
    return (
        f"Test mode: serving job {deployment['job_id']} for {model['name']} v{model['version']} validated "
        "and logged, nothing submitted (set serving_deploy_mode=production to deploy)."
    )


def _jobs_table(jobs: list[dict]) -> list[str]:
    lines = [
        "| Job | State | Last batch | Rows in | Predicted | Quarantined | Rows/s | Latency (s) | Model version |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for job in jobs:
        m = job.get("last_metrics") or {}
        lines.append(
            f"| {job['job_id']} | {job['state']} | {fmt(m.get('batch_id'))} @ {fmt(m.get('timestamp'))} | "
            f"{fmt(m.get('rows_in'))} | {fmt(m.get('predicted'))} | {fmt(m.get('quarantined'))} | "
            f"{fmt(m.get('rows_per_s'))} | {fmt(m.get('latency_s'))} | {fmt(m.get('model_version'))} |"
        )
    return [*lines, ""]


def monitoring_markdown(report: dict) -> str:
    """The monitoring report (generated_at, backend, jobs with their last metrics, prediction output
    partitions) as Markdown."""
    lines = [f"# Serving monitoring report {report['generated_at']}", "", f"Backend: {report['backend']}", ""]
    jobs = report.get("jobs") or []
    lines += ["## Serving jobs", ""]
    lines += _jobs_table(jobs) if jobs else ["No active serving job.", ""]
    output = report.get("prediction_output") or {}
    lines += ["## Prediction output", "", f"`{output.get('predictions_uri')}`", ""]
    if output.get("partitions"):
        lines += ["| Date | Files | Batches | Rows | Bytes |", "|---|---|---|---|---|"]
        for p in output["partitions"]:
            lines.append(f"| {p['date']} | {p['files']} | {p['batches']} | {p['rows']} | {p['bytes']} |")
    else:
        lines.append("No predictions written yet.")
    return "\n".join(lines).rstrip() + "\n"

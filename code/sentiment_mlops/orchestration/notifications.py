"""Messages that reach a person: DAG failures and monitoring alerts, by email and to Slack, through
the providers' notifiers (SmtpNotifier, SlackWebhookNotifier) configured by Airflow Connections.

=========================  ============================  ==============================================
Setting                    Kind, default                 Meaning
=========================  ============================  ==============================================
sentiment_smtp             Connection (smtp), none       the mail server: host, port, login, password;
                                                         extras `from_email`, `timeout` (s), `retry_limit`,
                                                         `disable_tls`, `disable_ssl`
alert_email_to             Variable, none                comma-separated recipients (no mail when unset)
sentiment_slack            Connection (slackwebhook),    an incoming webhook (no Slack message when unset)
                           none
=========================  ============================  ==============================================

A channel is used when it is configured; none configured means the message goes to the task log only.
A notifier that fails (mail server unreachable, webhook rejected) is logged with its reason and
counted in the result, never raised: a notification must not fail the work it reports on, nor
hide the failure it reports.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

SMTP_CONN_ID = "sentiment_smtp"
SLACK_CONN_ID = "sentiment_slack"
VAR_EMAIL_TO = "alert_email_to"

Notifier = Callable[[Any], None]


def _raw(text: str) -> str:
    # Notifiers render their fields as Jinja templates: a message quoting an error with `{{` must
    # arrive as written.
    return "{% raw %}" + text + "{% endraw %}"


def _connection_exists(conn_id: str) -> bool:
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except Exception:  # AirflowNotFoundException, or no way to ask: the channel is not configured
        return False
    return True


def _email_recipients(get_variable: Callable[[str, str | None], str | None]) -> list[str]:
    raw = get_variable(VAR_EMAIL_TO, None) or ""
    return [r.strip() for r in raw.split(",") if r.strip()]


def _variable(name: str, default: str | None) -> str | None:
    from airflow.sdk import Variable

    try:
        return Variable.get(name, default)
    except Exception:  # a Variables backend that cannot answer: treat as unset
        return default


def configured_notifiers(subject: str, body: str) -> dict[str, Notifier]:
    """One notifier per configured channel, carrying `subject` and `body` (plain text)."""
    notifiers: dict[str, Notifier] = {}
    recipients = _email_recipients(_variable)
    if recipients and _connection_exists(SMTP_CONN_ID):
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        notifiers["email"] = SmtpNotifier(
            smtp_conn_id=SMTP_CONN_ID,
            to=recipients,
            subject=_raw(subject),
            html_content=_raw(f"<pre>{html.escape(body)}</pre>"),
        )
    if _connection_exists(SLACK_CONN_ID):
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        notifiers["slack"] = SlackWebhookNotifier(
            slack_webhook_conn_id=SLACK_CONN_ID, text=_raw(f"*{subject}*\n{body}"), timeout=10
        )
    return notifiers


def send(subject: str, body: str, context: Mapping[str, Any]) -> dict[str, str]:
    """Send to every configured channel; returns channel -> "sent" or "failed: <reason>" (empty when
    none is configured). Never raises."""
    log.info("NOTIFICATION: %s\n%s", subject, body)
    try:
        notifiers = configured_notifiers(subject, body)
    except Exception as exc:  # a broken provider install must not break the caller either
        log.warning("notifications not sent: %s", exc)
        return {"setup": f"failed: {exc}"}
    results: dict[str, str] = {}
    for channel, notifier in notifiers.items():
        try:
            notifier(dict(context))
            results[channel] = "sent"
        except Exception as exc:
            reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            log.warning("%s notification failed (the work it reports on goes on): %s", channel, reason)
            results[channel] = f"failed: {reason}"
    if not notifiers:
        log.info("no notification channel configured (Connection %s + Variable %s, or Connection %s)",
                 SMTP_CONN_ID, VAR_EMAIL_TO, SLACK_CONN_ID)  # fmt: skip
    return results


def failure_message(context: Mapping[str, Any]) -> tuple[str, str]:
    """Subject and body for a failed DAG run, from the callback's context."""
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or "?"
    ti = context.get("ti") or context.get("task_instance")
    lines = [
        f"DAG: {dag_id}",
        f"Run: {context.get('run_id') or getattr(ti, 'run_id', '?')}",
        f"Reason: {context.get('reason') or 'task failed'}",
    ]
    if ti is not None:
        lines.append(f"Failed task: {getattr(ti, 'task_id', '?')} (try {getattr(ti, 'try_number', '?')})")
    exception = context.get("exception")
    if exception is not None:
        text = str(exception).strip()
        lines.append(f"Error: {type(exception).__name__}: {text.splitlines()[0][:500] if text else ''}")
    log_url = getattr(ti, "log_url", None) if ti is not None else None
    if log_url:
        lines.append(f"Log: {log_url}")
    return f"[sentiment-mlops] DAG {dag_id} failed", "\n".join(lines)


def on_failure(context: Mapping[str, Any]) -> None:
    """Every task's on_failure_callback (through dag_factories.dag_defaults): tell a person which run
    and task failed, with what error, and where its log is."""
    subject, body = failure_message(context)
    send(subject, body, context)

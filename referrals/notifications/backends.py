"""The two ways a message leaves: GOV.UK Notify (email and SMS) and SMTP email (Flask-Mailman).

Each back-end sends one message and says how it went: a provider reference when sent,
`TemporaryFailure` when trying again later may work (the server is away, a rate limit, a 5xx),
`PermanentFailure` when it never will (an address refused, a bad template, bad credentials).
"""

from __future__ import annotations

import io
import smtplib
from dataclasses import dataclass, field
from typing import Protocol

from flask import current_app
from flask_mailman import EmailMessage
from notifications_python_client import prepare_upload
from notifications_python_client.errors import APIError
from notifications_python_client.notifications import NotificationsAPIClient

from referrals.extensions import mail
from referrals.notifications.models import Channel
from referrals.notifications.outbound import NOTIFY, SMTP, backend_name


class TemporaryFailure(Exception):
    """Sending failed this time; it may work later."""


class PermanentFailure(Exception):
    """Sending will never work for this message as it stands."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mimetype: str = "application/pdf"


@dataclass(frozen=True)
class Outgoing:
    channel: Channel
    recipient: str
    subject: str
    body: str
    reference: str  # ours, for the provider's records: never a patient identifier
    attachments: list[Attachment] = field(default_factory=list)


class Backend(Protocol):
    def send(self, message: Outgoing) -> str:
        """Send one message; returns the provider's reference for it."""


class SmtpBackend:
    """Email through the organisation's own mail server (MAIL_* settings)."""

    def send(self, message: Outgoing) -> str:
        if message.channel is not Channel.EMAIL:
            raise PermanentFailure("SMTP sends email only")
        config = current_app.config
        # The settings as they are now (Flask-Mailman would otherwise keep those it saw when
        # the app was made).
        connection = mail.get_connection(
            backend="smtp",
            host=config["MAIL_SERVER"],
            port=int(config["MAIL_PORT"]),
            username=config.get("MAIL_USERNAME") or "",
            password=config.get("MAIL_PASSWORD") or "",
            use_tls=bool(config.get("MAIL_USE_TLS")),
            timeout=config.get("MAIL_TIMEOUT"),
        )
        email = EmailMessage(
            subject=message.subject,
            body=message.body,
            from_email=config.get("MAIL_DEFAULT_SENDER"),
            to=[message.recipient],
            headers={"X-Referrals-Reference": message.reference},
            connection=connection,
        )
        for attachment in message.attachments:
            email.attach(attachment.filename, attachment.content, attachment.mimetype)
        try:
            email.send()
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            text = f"the mail server refused the address: {error.recipients}"
            if codes and all(400 <= code < 500 for code in codes):
                raise TemporaryFailure(text) from error
            raise PermanentFailure(text) from error
        except smtplib.SMTPAuthenticationError as error:
            raise PermanentFailure(f"the mail server refused our credentials: {error}") from error
        except smtplib.SMTPResponseException as error:
            text = f"the mail server answered {error.smtp_code}: {error.smtp_error!r}"
            if 500 <= error.smtp_code < 600:
                raise PermanentFailure(text) from error
            raise TemporaryFailure(text) from error
        except (smtplib.SMTPException, OSError) as error:
            raise TemporaryFailure(f"the mail server could not be reached: {error}") from error
        return message.reference


class NotifyBackend:
    """GOV.UK Notify through its own client: generic templates whose ((subject)) and
    ((body)) (and ((link_to_file)) for a letter) we fill in."""

    def __init__(self) -> None:
        config = current_app.config
        self.client = NotificationsAPIClient(
            config["NOTIFY_API_KEY"], base_url=config["NOTIFY_BASE_URL"], timeout=30
        )

    def send(self, message: Outgoing) -> str:
        config = current_app.config
        try:
            if message.channel is Channel.SMS:
                answer = self.client.send_sms_notification(
                    phone_number=message.recipient,
                    template_id=config["NOTIFY_SMS_TEMPLATE_ID"],
                    personalisation={"body": message.body},
                    reference=message.reference,
                )
            else:
                personalisation: dict[str, object] = {
                    "subject": message.subject,
                    "body": message.body,
                }
                template_id = config["NOTIFY_EMAIL_TEMPLATE_ID"]
                if message.attachments:
                    template_id = config.get("NOTIFY_EMAIL_WITH_FILE_TEMPLATE_ID")
                    if not template_id:
                        raise PermanentFailure(
                            "NOTIFY_EMAIL_WITH_FILE_TEMPLATE_ID is not set: cannot attach"
                        )
                    attachment = message.attachments[0]
                    personalisation["link_to_file"] = prepare_upload(
                        io.BytesIO(attachment.content),
                        filename=attachment.filename,
                        confirm_email_before_download=True,
                    )
                answer = self.client.send_email_notification(
                    email_address=message.recipient,
                    template_id=template_id,
                    personalisation=personalisation,
                    reference=message.reference,
                )
        except APIError as error:
            # Notify: 400 bad request (a bad number or address, a missing placeholder) and
            # 403 (a bad key) never improve; 429 (rate limit) and 5xx may.
            text = f"GOV.UK Notify answered {error.status_code}: {error.message}"
            if error.status_code == 429 or error.status_code >= 500:
                raise TemporaryFailure(text) from error
            raise PermanentFailure(text) from error
        return str(answer.get("id", ""))


def configured_backend() -> Backend | None:

    name = backend_name()
    if name == NOTIFY:
        return NotifyBackend()
    if name == SMTP:
        return SmtpBackend()
    return None

"""Render a notification's email from its Django templates and build the message.

Each template is a folder, templates/notifications/<name>/, with subject.txt,
body.txt and body.html.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

# Notification.subject stores at most this many characters. A longer subject
# (a very long plan name) is cut rather than failing the handler.
MAX_SUBJECT_LENGTH = 255


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    body_text: str
    body_html: str


def render_email(template: str, context: dict[str, Any]) -> RenderedEmail:
    """Render ``template``'s subject, text body and HTML body with ``context``."""
    folder = f"notifications/{template}"
    subject = render_to_string(f"{folder}/subject.txt", context)
    return RenderedEmail(
        # A header must be one line: Django rejects a subject with a line break.
        subject=" ".join(subject.split())[:MAX_SUBJECT_LENGTH],
        body_text=render_to_string(f"{folder}/body.txt", context).strip() + "\n",
        body_html=render_to_string(f"{folder}/body.html", context),
    )


def build_message(
    *, notification_id: str, recipient: str, subject: str, body_text: str, body_html: str
) -> EmailMultiAlternatives:
    """Build the multipart email (text with an HTML alternative) for one notification.

    The Message-ID is derived from the notification id, so a repeated send of
    the same notification carries the same Message-ID and mail clients that
    de-duplicate by it show the email once.
    """
    from_email = settings.DEFAULT_FROM_EMAIL
    domain = from_email.rpartition("@")[2].strip("> ") or "localhost"
    message = EmailMultiAlternatives(
        subject=subject,
        body=body_text,
        from_email=from_email,
        to=[recipient],
        headers={
            "Message-ID": f"<notification-{notification_id}@{domain}>",
            "X-Billing-Notification-Id": notification_id,
        },
    )
    message.attach_alternative(body_html, "text/html")
    return message

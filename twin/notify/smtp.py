"""E-mail through an SMTP server (smtplib): plain, STARTTLS or TLS, with login when configured.

One connection per delivery: notifications are few, and a connection left open
between batches would be dropped by the server anyway. The Message-ID is the
delivery's key, so a mailbox that received a retry twice can tell.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from twin.notify.config import SmtpSettings
from twin.notify.routing import Delivery
from twin.notify.transport import DeliveryError

#: Channel → the subject's first words.
SUBJECTS: dict[str, str] = {
    "family": "家人提醒 Family notice",
    "grid_worker": "网格通知 Grid notice",
    "security_desk": "安保通知 Security desk",
    "staff": "工作通知 Staff notice",
    "broadcast": "广播 Broadcast",
}


def message(delivery: Delivery, *, sender: str) -> EmailMessage:
    """The mail for one delivery."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = ", ".join(delivery.to)
    first = delivery.text.splitlines()[0] if delivery.text else ""
    mail["Subject"] = f"[{delivery.community_id}] {SUBJECTS.get(delivery.channel, '')}: " \
                      f"{first[:60]}"
    domain = sender.rpartition("@")[2].strip(" >") or "community-twin.invalid"
    mail["Message-ID"] = make_msgid(idstring=delivery.key, domain=domain)
    mail["Date"] = delivery.time
    mail.set_content(delivery.text)
    return mail


class SmtpTransport:
    """Sends each delivery as one mail to its addresses."""

    def __init__(self, settings: SmtpSettings, password: str | None = None) -> None:
        if settings.username is not None and not password:
            raise ValueError("an SMTP login needs a password")
        self.settings = settings
        self._password = password
        self._tls = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None)

    def send(self, delivery: Delivery) -> None:
        s = self.settings
        mail = message(delivery, sender=s.sender)
        try:
            if s.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s,
                                                        context=self._tls)
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
            with client:
                if s.security == "starttls":
                    client.starttls(context=self._tls)
                if s.username is not None:
                    client.login(s.username, self._password or "")
                refused = client.send_message(mail)
        except smtplib.SMTPRecipientsRefused as e:
            codes = sorted({code for code, _ in e.recipients.values()})
            raise DeliveryError(f"SMTP refused every recipient ({codes})",
                                permanent=all(c >= 500 for c in codes)) from None
        except smtplib.SMTPAuthenticationError as e:
            raise DeliveryError(f"SMTP login refused ({e.smtp_code})", permanent=True) from None
        except smtplib.SMTPResponseException as e:
            raise DeliveryError(f"SMTP {e.smtp_code}: {_said(e.smtp_error)}",
                                permanent=e.smtp_code >= 500) from None
        except (TimeoutError, smtplib.SMTPException, OSError) as e:
            raise DeliveryError(f"SMTP: {type(e).__name__}: {e}") from None
        if refused:
            codes = sorted({code for code, _ in refused.values()})
            raise DeliveryError(f"SMTP refused {len(refused)} of {len(delivery.to)} "
                                f"recipients ({codes})", permanent=all(c >= 500 for c in codes))

    def close(self) -> None:
        """Nothing held between deliveries."""


def _said(error: bytes | str) -> str:
    """What the server said, cut short; servers may echo the address, so only the first words."""
    text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
    words = [w for w in text.split() if "@" not in w]
    return " ".join(words)[:120]

"""Cart reminders go to the real SMTP server of tests/smtp.py."""

from tests.smtp import smtp_sink  # noqa: F401 - the session fixture

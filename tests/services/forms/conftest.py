"""Form tests send to the real SMTP server of tests/smtp.py and drive the system's chromium."""

from tests.browser import browser, screenshots  # noqa: F401 - session fixtures
from tests.smtp import smtp_sink  # noqa: F401 - the session fixture

"""The console's tests: the real broker and PostgreSQL, mail into the dev mailbox, the real chromium."""

from tests.browser import browser, screenshots  # noqa: F401 - session fixtures
from tests.smtp import smtp_sink  # noqa: F401 - session fixture

from tests.browser import browser, screenshots  # noqa: F401

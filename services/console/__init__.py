"""The marketer console: people's accounts and roles, sessions, API tokens, the audit log, HTML screens."""

"""Admin API: sources, leads, and (later) rules, sequences, templates and reports."""

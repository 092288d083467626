"""Helpers shared by the tests: polling with a deadline, and scripts run as OS processes."""

"""Tracker: deadlines of intergovernmental working groups, as code, calendars and reminders."""

__version__ = "0.1.0"

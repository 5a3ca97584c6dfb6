"""Alerts: incidents and alarms from AlertsTopic, to Slack."""

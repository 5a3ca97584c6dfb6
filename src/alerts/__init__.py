"""Alerts: incidents and alarms from AlertsTopic, delivered to each configured channel (Slack,
email): paced, retried, and sent once."""

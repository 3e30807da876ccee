"""Connectors: authenticated clients of the tools applets act on (GitHub, Jira, ServiceNow,
Splunk), and the action catalog that applets in any language call (docs/connectors.md)."""

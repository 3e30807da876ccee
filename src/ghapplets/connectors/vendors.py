"""Each connector kind's class, by kind; importing this registers every vendor's actions."""

from __future__ import annotations

from typing import Any

from ghapplets.connectors.config import ConnectorKind
from ghapplets.connectors.github import GitHub
from ghapplets.connectors.jira import Jira
from ghapplets.connectors.servicenow import ServiceNow
from ghapplets.connectors.splunk import Splunk

CONNECTORS: dict[ConnectorKind, Any] = {
    ConnectorKind.GITHUB: GitHub,
    ConnectorKind.JIRA: Jira,
    ConnectorKind.SERVICENOW: ServiceNow,
    ConnectorKind.SPLUNK: Splunk,
}

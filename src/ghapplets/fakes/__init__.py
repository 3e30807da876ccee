"""Local fakes of the vendor APIs the connectors call, speaking the vendors' wire formats.

``ghapplets fakes`` serves them; the pytest plugin gives them as the ``ghapplets_fakes``
fixture (see ``docs/fakes.md``). One module per vendor:

- :mod:`~ghapplets.fakes.github`: GitHub REST (github.com and GHES), App JWTs and installation
  tokens, the hook deliveries API;
- :mod:`~ghapplets.fakes.jira`: Jira Cloud (REST v3 and v2) and Data Center (REST v2);
- :mod:`~ghapplets.fakes.servicenow`: the ServiceNow Table API and OAuth token endpoint;
- :mod:`~ghapplets.fakes.splunk`: the Splunk HTTP Event Collector;

sharing :mod:`~ghapplets.fakes.core` (recording, fault injection, the ``/_fakes`` control API),
:mod:`~ghapplets.fakes.webhooks` (signed webhooks to a gateway) and
:mod:`~ghapplets.fakes.config` (``fakes.yaml``). :mod:`~ghapplets.fakes.runner` serves them on
real sockets.
"""

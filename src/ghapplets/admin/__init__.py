"""The admin API: ``/api/v1`` on its own address (``server.admin_address``), for operators,
scripts and the dashboard.

- :mod:`.access`: roles, what each route needs, and the :class:`~.access.Principal` a request
  acts as;
- :mod:`.tokens`: bearer tokens (made and checked here, only their hashes stored);
- :mod:`.auth`: :class:`~.auth.Authenticator`, which resolves a request's principal from a
  bearer token, an authenticating proxy's headers (SSO) or a session cookie (the dashboard's);
- :mod:`.problems`: every error as an RFC 9457 problem document;
- :mod:`.params`, :mod:`.schemas`: the query parameters, bodies and answers, as pydantic models;
- :mod:`.endpoint`: a route's declaration (method, path, access, models, handler);
- :mod:`.openapi`: the OpenAPI 3.1 document, generated from the declarations;
- :mod:`.context`: what the handlers reach (store, broker, the project's applets, sources and
  blueprints);
- :mod:`.audit`: the audit log of every change made through the API;
- :mod:`.routes`: the handlers, one module per resource;
- :mod:`.app`: the Starlette application that puts them together.
"""

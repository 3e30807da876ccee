"""Blueprints: durable workflows in the CNCF Serverless Workflow DSL 1.0.

The package is layered like the rest of Ghapplets: a pure core, and thin shells around it.

- :mod:`.source` reads a blueprint file (YAML 1.2 or JSON) keeping each value's line and column;
  :mod:`.model` are our pydantic models of the DSL; :mod:`.loader` and :mod:`.checks` turn a
  file into a :class:`~.loader.Blueprint`, or into line-precise problems (schema, then the
  semantic checks: ``then`` targets, expressions, references, and every feature this runtime
  does not execute, refused here rather than at run time).
- :mod:`.expressions` compiles jq runtime expressions once and binds their arguments per
  evaluation; :mod:`.errors` are the DSL's Problem-Details errors; :mod:`.durations` and
  :mod:`.uris` read durations and URI templates.
- :mod:`.engine` interprets a blueprint. It is deterministic given its journal, so a run is
  resumed after a crash by running it again: every task already journaled returns its recorded
  outcome instead of running, and the interrupted task runs again with the same idempotency key.
"""

"""Blueprints: durable workflows in the CNCF Serverless Workflow DSL 1.0.

The package is layered like the rest of Ghapplets: a pure core, and thin shells around it.

Loading (a file in, a :class:`~.loader.Blueprint` or line-precise problems out):

- :mod:`.source` reads YAML 1.2 or JSON keeping each key's and value's line and column;
- :mod:`.model` (with :mod:`.model_base`, :mod:`.model_auth`, :mod:`.model_common`,
  :mod:`.model_calls`, :mod:`.model_tasks`) are our pydantic models of the DSL;
- :mod:`.checks` are the semantic checks (``then`` targets, expressions, references) and
  :mod:`.refusals` the features this runtime does not execute, refused at validation;
- :mod:`.loader` puts them together: ``load_blueprint``, ``parse_blueprint``, ``load_blueprints``.

The language: :mod:`.expressions` (jq, compiled once, arguments bound per evaluation),
:mod:`.errors` (Problem-Details errors), :mod:`.durations`, :mod:`.uris` (URI templates).

Running:

- :mod:`.engine` interprets a :class:`~.program.Program` against a :class:`~.host.Host`; the
  task kinds live in :mod:`.calls`, :mod:`.processes` and :mod:`.listening`. It is deterministic
  given its journal (:mod:`.records`), so a run resumes after a crash by running again: tasks
  already journaled return their recorded outcome, the interrupted one runs again with the same
  idempotency key.
- :mod:`.local` is the in-process host (``ghapplets run``, the test harness), :mod:`.effects`
  turns applets and connector actions into tasks, :mod:`.transport` sends HTTP with httpx,
  :mod:`.spawn` runs processes.
"""

"""The Ghapplets test kit: event factories, signed requests, in-process gateway, ``invoke``.

Installed as a pytest plugin (entry point ``ghapplets``); its fixtures are documented in
``docs/testing.md``. Everything here is also importable for use outside pytest.
"""

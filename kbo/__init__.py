"""kbo: build every Debian architecture of the kernel package, so none falls behind.

The import packages, and which way the arrows point (``tests/test_layout.py`` checks it):

- ``kbo.errors``, ``kbo.config``, ``kbo.text``, ``kbo.datafile``: the base every other
  part stands on (errors, settings, text from outside, kbo's TOML data files).
- ``kbo.packaging``, ``kbo.arches``, ``kbo.recipes``: Debian knowledge and kbo's data
  files, shared by both sides (the matrix, ``debian/config``, ``.dsc``, changelog,
  dpkg's arch table, the packaging repository, downloads).
- ``kbo.messaging``: the Celery app and the calls that cross between the sides.
- ``kbo.orchestrator``: the coordinator's side (state, planning, mail, the status page).
- ``kbo.workers``: the build host's side (capabilities, sandbox, executors, builds).
- ``kbo.web``: ``kbo web``, the coordinator's HTTP API; it reads the state and asks the
  coordinator, as the CLI does (and stands on the coordinator's side, not the workers').
- ``kbo.cli``: ``kbo <verb>``, on top of everything.

Neither side imports the other, and nothing below the CLI imports it.
"""

__version__ = "0.1.0"

"""``kbo web``: the coordinator's HTTP API, for maintainers away from its host.

It reads kbo's state through the read-only state reader and sends submissions, retries
and cancels to the coordinator as the CLI verbs do, so the coordinator stays the one
writer. ``app`` makes the application (``create_app``), ``api`` holds the JSON routes,
``auth`` the tokens' roles, ``models`` the request bodies, ``relay`` the requests sent
on to the coordinator, ``files`` logs and artifacts found from ids in the database, and
``guards`` the body limit and the last line of defence. An HTML dashboard goes in a
router of its own beside ``api``.
"""

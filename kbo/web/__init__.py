"""``kbo web``: the coordinator's HTTP API, for maintainers away from its host.

It reads kbo's state through the read-only state reader and sends submissions, retries
and cancels to the coordinator as the CLI verbs do, so the coordinator stays the one
writer. ``app`` makes the application (``create_app``), ``api`` holds the JSON routes,
``auth`` the tokens' roles, ``models`` the request bodies, ``relay`` the requests sent
on to the coordinator, ``files`` logs and artifacts found from ids in the database, and
``guards`` the body limit and the last line of defence. ``pages`` is the HTML
dashboard beside ``api``, and ``board`` the standings both serve, kept between requests.
"""

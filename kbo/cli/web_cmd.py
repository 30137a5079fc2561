"""``kbo web``: serve the coordinator's HTTP API (kbo.web) until stopped."""

from __future__ import annotations

import argparse
from typing import Any

from kbo.cli.common import add_config_argument, setup_logging
from kbo.config import load_config
from kbo.errors import EXIT_OK, InfraError, UserError


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "web",
        help="serve the HTTP API: status, runs, logs; submit, retry, cancel with a token",
        description="Listen on web_listen:web_port. Reads kbo's state read-only and sends "
        "submissions, retries and cancels to the coordinator as the CLI verbs do; "
        "maintainers authenticate with a token from `kbo token add` (Authorization: "
        "Bearer). Needs the web extra (pip install 'kbo[web]'). Runs on the coordinator's "
        "host, behind a TLS-terminating proxy.",
    )
    add_config_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kbo.orchestrator.state import StateReader

    config = load_config(args.config)
    try:
        from kbo.web.app import serve
    except ImportError as e:
        raise UserError(
            f"kbo web needs the web extra: pip install 'kbo[web]' ({e.name} is missing)"
        ) from None
    StateReader.open(config.database).close()  # refuse a bad database before listening
    setup_logging()
    try:
        serve(config)
    except SystemExit as e:  # uvicorn's way of saying it could not start (logged above)
        if e.code:
            raise InfraError(
                f"kbo web could not serve on {config.web_listen}:{config.web_port}"
            ) from None
    return EXIT_OK

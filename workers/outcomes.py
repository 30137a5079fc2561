"""How a build ended, told apart by whose fault it was: the worker's side of the report's
``outcome``, which the coordinator checks as untrusted input (``state.records.OUTCOMES``).

- ``succeeded``: every stage passed.
- ``failed``: the build ran and the commit broke it: a recipe step failed, the packages
  or files are wrong, the smoke check failed (each of those returns a first error), or
  the commit's own input was bad (a ``UserError``: ``debian/rules orig`` failed, an
  unusable changelog, build output that is not a regular file). Only this is mailed to
  the commit's authors.
- ``dep-wait``: this host lacks Build-Depends the recipe requires (``MissingBuildDepends``).
- ``infra-error``: the host or a service failed, anything else raised: an ``InfraError``
  (a download or git error, an executor that cannot be set up), the worker's own
  ``OSError`` (a full disk), any exception kbo did not expect.
"""

from __future__ import annotations

from kbo.errors import InfraError, UserError


class MissingBuildDepends(InfraError):
    """This host lacks Build-Depends the recipe requires: another host may have them."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"missing Build-Depends: {', '.join(missing)}")
        self.missing = missing


def outcome_of(error: BaseException) -> str:
    """The outcome of a build that raised ``error``: ``failed`` only when the commit is
    to blame (its input was bad), ``dep-wait`` when the host lacks its Build-Depends,
    else ``infra-error``."""
    if isinstance(error, MissingBuildDepends):
        return "dep-wait"
    if isinstance(error, UserError):
        return "failed"
    return "infra-error"

"""The request bodies the API takes: every field typed and bounded, no unknown field, so a
bad request is refused (422) before anything is sent on."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from kbo.text import NAME

# An arch, featureset or flavour name, or a glob of them (as `kbo submit --arch` takes).
Glob = Annotated[str, Field(pattern=r"^[a-z0-9*?\[\]!.+-]{1,64}$")]
Globs = Annotated[list[Glob], Field(max_length=64)]


class SubmitBody(BaseModel):
    """What `kbo submit` asks: the jobs of a commit, selected by globs."""

    model_config = ConfigDict(extra="forbid")

    source: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=1000,
            pattern=r"^[^\s\x00-\x1f\x7f]+$",
            description="the packaging repository: a URL or path the coordinator reaches, "
            "among allowed_repositories (default: the configured repository)",
        ),
    ] = None
    rev: Annotated[
        str | None,
        Field(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._/@^~{}+-]{0,254}$",
            description="branch or commit (default: the tracked branch)",
        ),
    ] = None
    recipe: Annotated[
        str | None, Field(pattern=f"^{NAME}$", max_length=64, description="how to build")
    ] = None
    arches: Globs = Field(default_factory=list, description="arch names or globs (all: [])")
    featuresets: Globs = Field(default_factory=list, description="featureset globs")
    flavours: Globs = Field(default_factory=list, description="flavour globs")
    reason: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")] = (
        "manual"
    )

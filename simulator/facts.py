"""What a provider's fixture states about its API, written from the provider's docs (never from
its declaration): the conformance suite (`tests/conformance/`) checks every registered provider
against these facts alone, so a new provider folder is in the suite with nothing else to list."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from simulator.server import LoggedRequest


class PolledFacts(Protocol):
    """The facts of a polled provider's fixture (besides `Fixture`'s routes and advance)."""

    token: str  # the credential it accepts; a test may set another before serving
    # documented native status -> canonical status (the contract): every status the API
    # can answer with
    contract: Mapping[str, str]
    finished: frozenset[str]  # native statuses after which a job never changes

    def job(self, steps: list[str]) -> str:
        """A new job walking through `steps` (one per `advance()`), with no outcome details
        beyond the status (no failed items); its reference as `upload-status track` takes it."""

    def unknown_job(self) -> str:
        """A well-formed reference of a job the API does not know."""

    def polled_job(self, request: LoggedRequest) -> str | None:
        """The reference of the job a logged request asked the status of, else None."""


class ListedFacts(Protocol):
    """The facts of a listed provider's fixture: its scopes' listings, newest first."""

    token: str
    contract: Mapping[str, str]  # documented native status -> canonical status
    finished: frozenset[str]
    # native and canonical status of an item a complete listing no longer names, when the
    # provider declares one
    gone: tuple[str, str] | None

    def scope(self) -> str:
        """A new scope, its listing empty."""

    def item(self, scope: str, steps: list[str], rows: int = 3) -> str:
        """A new item of `scope`, newer than every other, walking through `steps`, with
        `rows` children; its id."""

    def delete(self, item: str) -> None:
        """The item leaves its scope's listing."""

    def unknown_scope(self) -> str:
        """A scope the API does not know."""

    def read(self, request: LoggedRequest) -> tuple[str, str] | None:
        """("listing", scope) or ("children", item) for a logged request, else None."""

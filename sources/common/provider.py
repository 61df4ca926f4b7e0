"""A provider described as data: origin, credential key and native-to-canonical status map."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sources.common.status import TERMINAL, UNKNOWN


@dataclass(frozen=True)
class Provider:
    name: str  # the contract's provider key, also the dlt source name and config section
    base_url: str  # documented origin; SOURCES__<NAME>__BASE_URL overrides it
    secret_field: str  # name of the credential argument, e.g. "access_token"
    status_map: Mapping[str, str] = field(default_factory=dict)  # native -> canonical

    def canonical(self, native_status: object) -> str:
        """Canonical status of a native one; anything not declared is `unknown`."""
        return self.status_map.get(native_status, UNKNOWN) if isinstance(
            native_status, str) else UNKNOWN

    def is_terminal(self, native_status: object) -> bool:
        return self.canonical(native_status) in TERMINAL

    def env_key(self, field_name: str) -> str:
        """The environment form of one of this provider's configuration keys."""
        return f"SOURCES__{self.name.upper()}__{field_name.upper()}"

    @property
    def secret_env_key(self) -> str:
        return self.env_key(self.secret_field)

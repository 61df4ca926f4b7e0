"""The token store kept in the destination, for runners that keep no files between runs
(GitHub Actions, Airflow workers): one row per app, its JSON document encrypted with a key
from secrets (Fernet: AES-128-CBC with an HMAC, from the `cryptography` package).

Reads and writes go through dlt's SQL client of the run's pipeline, in one transaction per
`locked()`; on Postgres an advisory lock serializes refreshes across processes (a DuckDB file
admits one writing process, and the run lock already keeps two runs off one dataset).
"""

from __future__ import annotations

import contextlib
import json
import threading
import zlib
from collections.abc import Iterator
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from sources.common.config_checks import ConfigProblem

TABLE = "_upload_status_tokens"
ROW = "highlevel"


class DestinationTokenStore:
    """The document in `<dataset>._upload_status_tokens`, sealed with `key`."""

    def __init__(self, pipeline: Any, key: str, key_name: str) -> None:
        try:
            self._fernet = Fernet(key.encode())
        except ValueError:
            raise ConfigProblem(f"{key_name} is not a Fernet key (32 url-safe base64-encoded "
                                "bytes; make one with `python -c \"from cryptography.fernet "
                                "import Fernet; print(Fernet.generate_key().decode())\"`)"
                                ) from None
        self.pipeline, self.key_name = pipeline, key_name
        self.description = f"token store in {pipeline.dataset_name}.{TABLE}"
        self._thread_lock = threading.RLock()
        self._client: Any = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._thread_lock:
            if self._client is not None:  # nested on this thread: same transaction
                yield
                return
            with self.pipeline.sql_client() as client:
                self._prepare(client)
                with client.begin_transaction():
                    if self.pipeline.destination.destination_name == "postgres":
                        client.execute_sql("SELECT pg_advisory_xact_lock(%s)",
                                           zlib.crc32(self.description.encode()))
                    self._client = client
                    try:
                        yield
                    finally:
                        self._client = None

    def _prepare(self, client: Any) -> None:
        if not client.has_dataset():
            client.create_dataset()
        table = client.make_qualified_table_name(TABLE)
        client.execute_sql(f"CREATE TABLE IF NOT EXISTS {table} "
                           "(name VARCHAR(64) PRIMARY KEY, sealed TEXT NOT NULL)")

    def read(self) -> dict[str, Any]:
        client = self._in_transaction()
        table = client.make_qualified_table_name(TABLE)
        rows = client.execute_sql(f"SELECT sealed FROM {table} WHERE name = %s", ROW)
        if not rows:
            return {}
        try:
            document = json.loads(self._fernet.decrypt(rows[0][0].encode()))
        except (InvalidToken, ValueError):
            raise ConfigProblem(f"{self.key_name} cannot open the tokens stored in "
                                f"{self.pipeline.dataset_name}.{TABLE} (another key?); "
                                "restore the key, or delete that row and re-authorize the app"
                                ) from None
        return document if isinstance(document, dict) else {}

    def write(self, document: dict[str, Any]) -> None:
        client = self._in_transaction()
        table = client.make_qualified_table_name(TABLE)
        sealed = self._fernet.encrypt(json.dumps(document, sort_keys=True).encode()).decode()
        client.execute_sql(f"DELETE FROM {table} WHERE name = %s", ROW)
        client.execute_sql(f"INSERT INTO {table} (name, sealed) VALUES (%s, %s)", ROW, sealed)

    def _in_transaction(self) -> Any:
        if self._client is None:
            raise RuntimeError("the destination token store is used outside locked()")
        return self._client

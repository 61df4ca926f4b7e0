"""The token store kept in the destination, for runners that keep no files between runs
(GitHub Actions, Airflow workers): one row per agency app, its JSON document encrypted with a
key from secrets (Fernet: AES-128-CBC with an HMAC, from the `cryptography` package).

One app has one token home per destination: the rows live in a dataset of their own
(`TOKEN_DATASET`, default `upload_status_tokens`), not in the run's, so every dataset on the
destination (prod, staging) refreshes the same chain instead of spending each other's token.
A row left in a run's dataset by an earlier version is moved there on first use.

Reads and writes go through dlt's SQL client of the run's pipeline, in one transaction per
`locked()`; on Postgres an advisory lock keyed by the app serializes refreshes across
processes and datasets, and a write is a compare-and-swap on the document's `sequence`. The
token commit is exempt from the run lock's fence (`unfenced`): a rotated refresh token must be
kept whatever happened to the run.
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
from sources.common.unfenced import unfenced

TABLE = "_upload_status_tokens"
OLD_ROW = "highlevel"  # the row name in a run's own dataset before tokens had a home


class DestinationTokenStore:
    """The app's document in `<token dataset>._upload_status_tokens`, sealed with `key`."""

    def __init__(self, pipeline: Any, key: str, key_name: str, app: str, home: str) -> None:
        try:
            self._fernet = Fernet(key.encode())
        except ValueError:
            raise ConfigProblem(f"{key_name} is not a Fernet key (32 url-safe base64-encoded "
                                "bytes; make one with `python -c \"from cryptography.fernet "
                                "import Fernet; print(Fernet.generate_key().decode())\"`)"
                                ) from None
        self.pipeline, self.key_name, self.row, self.home = pipeline, key_name, app[:64], home
        self.description = f"token store in {home}.{TABLE}"
        self._thread_lock = threading.RLock()
        self._client: Any = None
        self._sequence: int | None = None  # the stored document's, as read in this lock
        self._old: tuple[str, str] | None = None  # (dataset, table) of a row to move

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._thread_lock:
            if self._client is not None:  # nested on this thread: same transaction
                yield
                return
            with self.pipeline.sql_client() as client, unfenced():
                self._prepare(client)
                with client.with_alternative_dataset_name(self.home), \
                        client.begin_transaction():
                    if self.pipeline.destination.destination_name == "postgres":
                        client.execute_sql("SELECT pg_advisory_xact_lock(%s)",
                                           zlib.crc32(f"tokens {self.row}".encode()))
                    self._client, self._sequence = client, None
                    try:
                        yield
                    finally:
                        self._client = None

    def _prepare(self, client: Any) -> None:
        with client.with_alternative_dataset_name(self.home):
            if not client.has_dataset():
                client.create_dataset()
            table = client.make_qualified_table_name(TABLE)
            client.execute_sql(f"CREATE TABLE IF NOT EXISTS {table} "
                               "(name VARCHAR(64) PRIMARY KEY, sealed TEXT NOT NULL)")

    def read(self) -> dict[str, Any]:
        client = self._in_transaction()
        rows = client.execute_sql(f"SELECT sealed FROM {self._table(client)} WHERE name = %s",
                                  self.row)
        if not rows:
            document = self._moved_from_the_run_dataset(client)
        else:
            document = self._open(rows[0][0], f"{self.home}.{TABLE}")
        self._sequence = _sequence(document.get("sequence")) if rows else None
        return document

    def _open(self, sealed: str, where: str) -> dict[str, Any]:
        try:
            document = json.loads(self._fernet.decrypt(sealed.encode()))
        except (InvalidToken, ValueError):
            raise ConfigProblem(f"{self.key_name} cannot open the tokens stored in {where} "
                                "(another key?); restore the key, or delete that row and "
                                "re-authorize the app") from None
        return document if isinstance(document, dict) else {}

    def _moved_from_the_run_dataset(self, client: Any) -> dict[str, Any]:
        """The document an earlier version kept in the run's dataset, or {}; written to the
        home by the next `write`, its old row deleted then."""
        dataset = self.pipeline.dataset_name
        with client.with_alternative_dataset_name(dataset), contextlib.suppress(Exception):
            table = client.make_qualified_table_name(TABLE)
            rows = client.execute_sql(f"SELECT sealed FROM {table} WHERE name = %s", OLD_ROW)
            if rows:
                self._old = (dataset, table)
                return self._open(rows[0][0], f"{dataset}.{TABLE}")
        return {}

    def write(self, document: dict[str, Any]) -> None:
        """Replace the app's row if it is still the one read (compare-and-swap on
        `sequence`); ConfigProblem if another writer changed it meanwhile."""
        client = self._in_transaction()
        table = self._table(client)
        rows = client.execute_sql(f"SELECT sealed FROM {table} WHERE name = %s", self.row)
        now = _sequence(self._open(rows[0][0], f"{self.home}.{TABLE}").get("sequence")) \
            if rows else None
        if now != self._sequence:
            raise ConfigProblem(f"the tokens in {self.home}.{TABLE} changed while this run "
                                "refreshed them (a second token home writing the same row?)")
        document["sequence"] = self._sequence = (now or 0) + 1
        sealed = self._fernet.encrypt(json.dumps(document, sort_keys=True).encode()).decode()
        client.execute_sql(f"DELETE FROM {table} WHERE name = %s", self.row)
        client.execute_sql(f"INSERT INTO {table} (name, sealed) VALUES (%s, %s)", self.row,
                           sealed)
        if (old := self._old) is not None:
            dataset, old_table = old
            with client.with_alternative_dataset_name(dataset):
                client.execute_sql(f"DELETE FROM {old_table} WHERE name = %s", OLD_ROW)
            self._old = None

    def _table(self, client: Any) -> str:
        return client.make_qualified_table_name(TABLE)

    def _in_transaction(self) -> Any:
        if self._client is None:
            raise RuntimeError("the destination token store is used outside locked()")
        return self._client


def _sequence(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0

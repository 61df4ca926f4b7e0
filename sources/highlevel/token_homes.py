"""One agency app, one token home: every run registers where it keeps the app's tokens in the
destination it loads (`<token dataset>._upload_status_token_homes`) and refuses to start when
another home already keeps them. HighLevel's refresh tokens are single-use, so two homes (two
machines' files, a file and the destination store) spend each other's token and the loser
must be re-authorized; refused here, nothing is spent.

Homes are seen only through a destination they share: two machines loading two DuckDB files
never meet. Moving the tokens on purpose: delete the app's row (`app` is printed) first.
"""

from __future__ import annotations

import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dlt

from sources.common.config_checks import ConfigProblem
from sources.common.unfenced import unfenced

TABLE = "_upload_status_token_homes"
KEY = "SOURCES__HIGHLEVEL__OAUTH__TOKEN_STORE"


def claim_home(app: str, home: str, token_dataset: str) -> None:
    """Register `home` for `app` in the running pipeline's destination, or ConfigProblem
    naming the other home; nothing when no pipeline runs or its destination has no SQL
    tables to keep the register in (files, Delta)."""
    try:
        pipeline = dlt.current.pipeline()
        if pipeline.destination.destination_name == "filesystem":
            return
        with pipeline.sql_client() as client, unfenced(), \
                client.with_alternative_dataset_name(token_dataset):
            _claim(client, app[:64], home)
    except ConfigProblem:
        raise
    except Exception:  # no pipeline (highlevel-prune), or no destination reachable yet: the
        return  # run meets that itself


def _claim(client: Any, app: str, home: str) -> None:
    if not client.has_dataset():
        client.create_dataset()
    table = client.make_qualified_table_name(TABLE)
    client.execute_sql(f"CREATE TABLE IF NOT EXISTS {table} (app VARCHAR(64) PRIMARY KEY, "
                       "home TEXT NOT NULL, last_used_at TEXT NOT NULL)")
    with client.begin_transaction():
        rows = client.execute_sql(f"SELECT home, last_used_at FROM {table} WHERE app = %s", app)
        if rows and rows[0][0] != home:
            raise ConfigProblem(_refusal(app, home, rows[0], table))
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        client.execute_sql(f"DELETE FROM {table} WHERE app = %s", app)
        client.execute_sql(f"INSERT INTO {table} (app, home, last_used_at) VALUES (%s, %s, %s)",
                           app, home, now)


def _refusal(app: str, home: str, row: Any, table: str) -> str:
    other, used = row
    return (f"the agency app's tokens already live in another home ({other}, last used "
            f"{used}); this run would keep them in {home}, and the two would spend each other's "
            f"single-use refresh token. Use the same {KEY} everywhere, or move the home on "
            f"purpose: DELETE FROM {table} WHERE app = '{app[:64]}'")


def file_home(path: str) -> str:
    return f"file {Path(path).resolve()} on {socket.gethostname()}"


def destination_home(token_dataset: str) -> str:
    return f"the destination's {token_dataset} dataset"

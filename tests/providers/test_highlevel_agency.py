"""HighLevel for agencies over real HTTP: agency OAuth (rotating refresh tokens, location
tokens, discovery), the token store, refusals that cost one location, daily limits, and
locations read concurrently with exactly the state of a sequential run."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO, cli, postgres_dsn, read_duckdb

from simulator import Fault, Simulator
from sources.common.redaction import variants
from sources.highlevel.fixture import HighLevelFixture
from sources.highlevel.oauth_fixture import OAuthApp

DB = "upload_status_data.duckdb"
OAUTH = "SOURCES__HIGHLEVEL__OAUTH__"


def agency(locations: dict[str, int], installed: list[str] | None = None, **fixture: object
           ) -> HighLevelFixture:
    """A fixture whose locations are read with tokens the agency app mints (no shared token
    works: the fixture's own is never configured)."""
    names = installed if installed is not None else list(locations)
    oauth = OAuthApp(installed={loc: f"Sub-account {loc}" for loc in names})
    return HighLevelFixture(locations=locations, token="never-configured", oauth=oauth,
                            **fixture)


def agency_env(sim: Simulator, fixture: HighLevelFixture, store: Path,
               discover: bool = True) -> dict[str, str]:
    app = fixture.oauth
    env = {"SOURCES__HIGHLEVEL__BASE_URL": sim.base_url, f"{OAUTH}CLIENT_ID": app.client_id,
           f"{OAUTH}CLIENT_SECRET": app.client_secret, f"{OAUTH}REFRESH_TOKEN": app.refresh_token,
           f"{OAUTH}COMPANY_ID": app.company_id, f"{OAUTH}TOKEN_STORE": str(store),
           "COLUMNS": "200"}
    if discover:
        env[f"{OAUTH}APP_ID"] = app.app_id
    return env


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__HIGHLEVEL__")}


def run_cli(tmp_path: Path, env: dict[str, str], *args: str,
            db: str = DB) -> subprocess.CompletedProcess[str]:
    return cli("run", "--source", "highlevel", *args, cwd=tmp_path,
               env={"DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / db), **env},
               inherit=clean_env())


def uploads_per_location(path: Path) -> list[tuple[str, int]]:
    return read_duckdb(path, """select location_id, count(*) from {ds}.highlevel_csv_uploads
        group by 1 order by 1""")


def left_behind(tmp_path: Path, *skip: Path) -> bytes:
    """Every byte a run left in its folder (the token store excepted)."""
    return b"".join(p.read_bytes() for p in sorted(tmp_path.rglob("*"))
                    if p.is_file() and not any(p == s or p.name.startswith(s.name) for s in skip))


def test_agency_oauth_end_to_end_with_discovery(tmp_path):
    """One refresh (the configured refresh token is spent, the new one stored 0600), a token
    minted per installed location, each location read with its own; no secret shown or
    stored outside the token store."""
    fixture = agency({"loc_a": 4, "loc_b": 3, "loc_c": 2})
    store = tmp_path / "tokens" / "highlevel.json"
    with Simulator(fixture) as sim:
        done = run_cli(tmp_path, {**agency_env(sim, fixture, store), "RUNTIME__LOG_LEVEL": "DEBUG"})
        sent = {(r.path.split("/")[2], r.headers["authorization"])
                for r in sim.requests(path_pattern=r"/social-media-posting/.*")}
    app = fixture.oauth

    assert done.returncode == 0, done.stdout + done.stderr
    assert uploads_per_location(tmp_path / DB) == [("loc_a", 4), ("loc_b", 3), ("loc_c", 2)]
    assert (app.refreshes, app.mints) == (1, 3)
    assert app.spent == [app.refresh_token]
    bound = {token: issued.location for token, issued in app.issued.items()}
    assert {(loc, bound[auth.removeprefix("Bearer ")]) for loc, auth in sent} == \
        {(loc, loc) for loc in ("loc_a", "loc_b", "loc_c")}
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    stored = json.loads(store.read_text())
    (entry,) = stored["accounts"].values()
    assert entry["refresh_token"] != app.refresh_token and entry["refresh_token"] in app.all_secrets
    everything = done.stdout.encode() + done.stderr.encode() + left_behind(tmp_path, store)
    for secret in app.all_secrets:
        assert secret.encode() not in everything


def test_rotation_across_two_runs_uses_the_stored_refresh_token(tmp_path):
    """Run 2 finds the company token expired: it refreshes with the token run 1 stored (the
    configured one no longer works), and run 3 reuses what run 2 stored."""
    fixture = agency({"loc_a": 3})
    store = tmp_path / "store.json"
    with Simulator(fixture) as sim:
        env = agency_env(sim, fixture, store)
        first = run_cli(tmp_path, env)
        fixture.oauth.expire_all()
        second = run_cli(tmp_path, env)
        third = run_cli(tmp_path, env)
    app = fixture.oauth

    assert [first.returncode, second.returncode, third.returncode] == [0, 0, 0], second.stderr
    assert app.refreshes == 2  # run 3 used run 2's company token: still fresh
    assert app.spent[0] == app.refresh_token and app.spent[1] != app.refresh_token
    assert app.mints == 2  # a location token for run 1, a new one after the expiry


def test_tokens_expiring_in_the_middle_of_a_run_are_renewed_and_nothing_is_lost(tmp_path):
    """Every token expires (server side) while the run reads: the refused request is sent again
    with a new location token (and company token), once, and every import loads."""
    fixture = agency({"loc_a": 30, "loc_b": 30})
    fixture.expire_tokens_after = {12}  # the 12th Social Planner request finds them expired
    store = tmp_path / "store.json"
    with Simulator(fixture) as sim:
        done = run_cli(tmp_path, {**agency_env(sim, fixture, store),
                                  "SOURCES__HIGHLEVEL__PAGE_SIZE": "5"})
        refused = sim.requests(path_pattern=r"/social-media-posting/.*")
    app = fixture.oauth

    assert done.returncode == 0, done.stdout + done.stderr
    assert uploads_per_location(tmp_path / DB) == [("loc_a", 30), ("loc_b", 30)]
    assert 401 in {r.status for r in refused}
    assert app.refreshes == 2 and app.mints >= 3


def test_a_revoked_refresh_token_exits_2_naming_the_key(tmp_path):
    fixture = agency({"loc_a": 2})
    fixture.oauth.revoke()
    with Simulator(fixture) as sim:
        done = run_cli(tmp_path, agency_env(sim, fixture, tmp_path / "store.json"))

    assert done.returncode == 2, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert "SOURCES__HIGHLEVEL__OAUTH__REFRESH_TOKEN was refused" in message
    assert "re-authorized" in message
    assert "Traceback" not in done.stderr
    assert fixture.oauth.refresh_token not in done.stdout + done.stderr


def test_a_new_configured_refresh_token_replaces_a_dead_stored_chain(tmp_path):
    """After a re-authorization the operator puts the new refresh token in the configuration:
    it is used, not the stored (spent) one."""
    fixture = agency({"loc_a": 2})
    store = tmp_path / "store.json"
    with Simulator(fixture) as sim:
        env = agency_env(sim, fixture, store)
        assert run_cli(tmp_path, env).returncode == 0
        fixture.oauth.revoke()
        fixture.oauth.expire_all()
        assert run_cli(tmp_path, env).returncode == 2
        reauthorized = OAuthApp(installed=fixture.oauth.installed)
        fixture.oauth = reauthorized
        again = run_cli(tmp_path, {**env, f"{OAUTH}REFRESH_TOKEN": reauthorized.refresh_token})

    assert again.returncode == 0, again.stderr
    assert reauthorized.spent == [reauthorized.refresh_token]


def test_two_processes_refreshing_at_once_spend_the_refresh_token_once(tmp_path):
    """Two runs into different destinations share the token store; the refresh answer is slow,
    so both need it at the same time: the store's lock makes the second use the first's."""
    fixture = agency({"loc_a": 3, "loc_b": 2})
    store = tmp_path / "shared-store.json"
    with Simulator(fixture) as sim:
        slow = Fault(None, path_pattern=r"/oauth/token", delay=1.5, times=2)
        sim.inject(slow)
        env = agency_env(sim, fixture, store)
        results: dict[str, subprocess.CompletedProcess[str]] = {}
        runs = [threading.Thread(target=lambda db=db: results.__setitem__(
            db, run_cli(tmp_path, env, db=db))) for db in ("one.duckdb", "two.duckdb")]
        for thread in runs:
            thread.start()
        for thread in runs:
            thread.join()

    assert {db: r.returncode for db, r in results.items()} == \
        {"one.duckdb": 0, "two.duckdb": 0}, [r.stderr for r in results.values()]
    assert fixture.oauth.refreshes == 1
    for db in ("one.duckdb", "two.duckdb"):
        assert uploads_per_location(tmp_path / db) == [("loc_a", 3), ("loc_b", 2)]


def test_killed_right_after_a_refresh_the_next_run_still_works(tmp_path):
    """The rotated refresh token is in the store before any request uses the new access
    token: a run killed at its first Social Planner request loses nothing."""
    fixture = agency({"loc_a": 3})
    store = tmp_path / "store.json"
    with Simulator(fixture) as sim:
        held = Fault(None, path_pattern=r"/social-media-posting/.*", delay=30)
        sim.inject(held)
        env = agency_env(sim, fixture, store)
        process = subprocess.Popen(
            [sys.executable, "-m", "pipelines", "run", "--source", "highlevel"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**clean_env(), "PYTHONPATH": str(REPO), **env,
                 "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / DB)})
        assert held.arrived.wait(60)
        process.send_signal(signal.SIGKILL)
        process.wait()
        held.release.set()
        fixture.oauth.expire_all()  # the next run must refresh with the stored token
        again = run_cli(tmp_path, env)

    assert again.returncode == 0, again.stderr
    assert fixture.oauth.refreshes == 2
    assert uploads_per_location(tmp_path / DB) == [("loc_a", 3)]


@pytest.mark.parametrize("step", ["send", "synced", "renamed"])
def test_killed_at_any_step_of_a_refresh_the_next_run_refreshes(tmp_path, step):
    """SIGKILL before the refresh request, with the store's new file synced but not renamed,
    and right after the rename: the next run refreshes with the newest refresh token, no
    re-authorization."""
    fixture = agency({"loc_a": 3})
    store = tmp_path / "store.json"
    with Simulator(fixture) as sim:
        env = agency_env(sim, fixture, store)
        assert run_cli(tmp_path, env).returncode == 0
        fixture.oauth.expire_all()  # the next run must refresh
        killed = cli("run", "--source", "highlevel", cwd=tmp_path, script="crash_run.py",
                     env={"DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / DB), **env,
                          "CRASH_AT": f"refresh:{step}"}, inherit=clean_env())
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        refreshed = fixture.oauth.refreshes
        fixture.oauth.expire_all()
        again = run_cli(tmp_path, env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert fixture.oauth.refreshes == refreshed + 1  # refreshed with the newest token
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".store.json.")] == []
    assert uploads_per_location(tmp_path / DB) == [("loc_a", 3)]


def _run_after_the_store_is(spoiled: Callable[[Path], object], tmp_path: Path
                            ) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A run that fills the token store, `spoiled(store)`, and the next run."""
    fixture = agency({"loc_a": 1})
    store = tmp_path / "store.json"
    with Simulator(fixture) as sim:
        env = agency_env(sim, fixture, store)
        assert run_cli(tmp_path, env).returncode == 0
        spoiled(store)
        return store, run_cli(tmp_path, env)


def test_a_store_readable_by_others_is_made_0600_with_a_warning(tmp_path):
    store, again = _run_after_the_store_is(lambda store: store.chmod(0o644), tmp_path)
    assert again.returncode == 0, again.stderr
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert "was readable by others (mode 644)" in " ".join(again.stderr.split())


def test_a_damaged_store_says_what_works(tmp_path):
    _, damaged = _run_after_the_store_is(lambda store: store.write_text("{not json"), tmp_path)
    text = " ".join(damaged.stderr.split())
    assert damaged.returncode == 2, damaged.stderr
    assert "is damaged (not JSON)" in text and "re-authorize the app" in text
    assert "move it away" not in text


def test_an_access_token_holding_cr_lf_is_nowhere_in_what_a_run_leaves(tmp_path):
    """The OAuth server answers an access token with CR/LF in it: the run fails (no header can
    carry it) and neither the pipeline folder nor `upload-status dlt trace` shows it, in any
    escaped form."""
    fixture = agency({"loc_a": 1})
    fixture.oauth.access_suffix = "\r\nX-Injected: 1"
    store = tmp_path / "store.json"
    with Simulator(fixture) as sim:
        env = agency_env(sim, fixture, store)
        done = run_cli(tmp_path, env)
        trace = cli("dlt", "trace", cwd=tmp_path, env={
            "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / DB), **env},
            inherit=clean_env())
    tokens = [t for t in fixture.oauth.issued if "\r\n" in t]
    assert tokens and done.returncode != 0
    left = left_behind(tmp_path, store) + done.stdout.encode() + done.stderr.encode() + \
        trace.stdout.encode() + trace.stderr.encode()
    for token in tokens:
        for form in variants(token) | set(token.split("\r\n")[:1]):
            assert form.encode() not in left, form


def test_one_location_refused_fails_alone(tmp_path):
    """loc_x is not installed (no token can be minted), loc_y's tokens are refused even after
    a renewal: each fails alone, naming itself and the key; the others load (exit 1)."""
    fixture = agency({"loc_a": 2, "loc_b": 3, "loc_x": 1, "loc_y": 1},
                     installed=["loc_a", "loc_b", "loc_y"])
    fixture.refused_locations = {"loc_y"}
    with Simulator(fixture) as sim:
        env = {**agency_env(sim, fixture, tmp_path / "store.json", discover=False),
               "SOURCES__HIGHLEVEL__LOCATION_IDS": '["loc_a", "loc_x", "loc_b", "loc_y"]'}
        done = run_cli(tmp_path, env)
        tried_y = sim.requests(path_pattern=r"/social-media-posting/loc_y/csv")

    message = " ".join(done.stderr.split())
    assert done.returncode == 1, done.stdout + done.stderr
    assert "partly failed" in done.stdout
    assert ("location loc_x: no token from the agency OAuth app" in message
            and "Location is not installed for this app" in message)
    assert "location loc_y: the API refused the token the agency app minted for it" in message
    assert "SOURCES__HIGHLEVEL__OAUTH__CLIENT_ID" in message
    assert [r.status for r in tried_y] == [403, 403]  # renewed once, then given up
    assert uploads_per_location(tmp_path / DB) == [("loc_a", 2), ("loc_b", 3)]


def test_location_tokens_take_precedence_over_the_agency_app(tmp_path):
    fixture = agency({"loc_a": 2, "loc_b": 1})
    fixture.location_tokens = {"loc_b": "pit-B-own-4411"}
    with Simulator(fixture) as sim:
        env = {**agency_env(sim, fixture, tmp_path / "store.json", discover=False),
               "SOURCES__HIGHLEVEL__LOCATION_IDS": '["loc_a", "loc_b"]',
               "SOURCES__HIGHLEVEL__LOCATION_TOKENS": '{"loc_b": "pit-B-own-4411"}'}
        done = run_cli(tmp_path, env)
        sent_b = {r.headers["authorization"]
                  for r in sim.requests(path_pattern=r"/social-media-posting/loc_b/.*")}

    assert done.returncode == 0, done.stderr
    assert sent_b == {"Bearer pit-B-own-4411"}
    assert fixture.oauth.mints == 1  # loc_a only


@pytest.mark.parametrize(("env", "named"), [
    ({f"{OAUTH}CLIENT_ID": "cid"}, f"agency OAuth is partly configured: {OAUTH}CLIENT_SECRET, "
     f"{OAUTH}REFRESH_TOKEN, {OAUTH}COMPANY_ID missing"),
    ({f"{OAUTH}CLIENT_ID": "cid", f"{OAUTH}CLIENT_SECRET": "s3cret-x", f"{OAUTH}REFRESH_TOKEN":
      "rt-1234", f"{OAUTH}COMPANY_ID": "comp"},
     "SOURCES__HIGHLEVEL__LOCATION_IDS is missing"),
    ({f"{OAUTH}CLIENT_ID": "cid", f"{OAUTH}CLIENT_SECRET": "s3cret-x", f"{OAUTH}REFRESH_TOKEN":
      "rt-1234\n", f"{OAUTH}COMPANY_ID": "comp"},
     f"{OAUTH}REFRESH_TOKEN has surrounding whitespace"),
    ({"SOURCES__HIGHLEVEL__ACCESS_TOKEN": "tok-1234", "SOURCES__HIGHLEVEL__LOCATION_IDS":
      '["l1"]', "SOURCES__HIGHLEVEL__CONCURRENCY": "0"},
     "SOURCES__HIGHLEVEL__CONCURRENCY must be a whole number from 1 to 256"),
    ({"SOURCES__HIGHLEVEL__ACCESS_TOKEN": "tok-1234", "SOURCES__HIGHLEVEL__LOCATION_IDS":
      '["l1"]', "SOURCES__HIGHLEVEL__CONCURRENCY": "many"},
     "SOURCES__HIGHLEVEL__CONCURRENCY has the wrong type"),
    ({f"{OAUTH}CLIENT_ID": "cid", f"{OAUTH}CLIENT_SECRET": "s3cret-x", f"{OAUTH}REFRESH_TOKEN":
      "rt-1234", f"{OAUTH}COMPANY_ID": "comp", f"{OAUTH}APP_ID": "app",
      f"{OAUTH}TOKEN_STORE": "destination"},
     f"{OAUTH}TOKEN_STORE = destination needs {OAUTH}STORE_KEY"),
    ({f"{OAUTH}CLIENT_ID": "cid", f"{OAUTH}CLIENT_SECRET": "s3cret-x", f"{OAUTH}REFRESH_TOKEN":
      "rt-1234", f"{OAUTH}COMPANY_ID": "comp", f"{OAUTH}APP_ID": "app",
      f"{OAUTH}TOKEN_STORE": "destination", f"{OAUTH}STORE_KEY": "not-a-key"},
     f"{OAUTH}STORE_KEY is not a Fernet key"),
])
def test_agency_configuration_mistakes_exit_2_naming_the_key(tmp_path, env, named):
    done = cli("run", "--source", "highlevel", cwd=tmp_path,
               env={"SOURCES__HIGHLEVEL__BASE_URL": "http://127.0.0.1:9", **env},
               inherit=clean_env())
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_a_wrong_client_secret_exits_2_naming_the_client_keys(tmp_path):
    fixture = agency({"loc_a": 1})
    with Simulator(fixture) as sim:
        done = run_cli(tmp_path, {**agency_env(sim, fixture, tmp_path / "s.json"),
                                  f"{OAUTH}CLIENT_SECRET": "not-the-secret-99"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"check {OAUTH}CLIENT_ID and {OAUTH}CLIENT_SECRET" in " ".join(done.stderr.split())


def test_agency_keys_as_a_toml_table_in_secrets_toml(tmp_path):
    fixture = agency({"loc_a": 2, "loc_b": 1})
    app = fixture.oauth
    (tmp_path / ".dlt").mkdir()
    with Simulator(fixture) as sim:
        (tmp_path / ".dlt" / "secrets.toml").write_text(
            f'[sources.highlevel]\nbase_url = "{sim.base_url}"\n\n'
            f'[sources.highlevel.oauth]\nclient_id = "{app.client_id}"\n'
            f'client_secret = "{app.client_secret}"\nrefresh_token = "{app.refresh_token}"\n'
            f'company_id = "{app.company_id}"\napp_id = "{app.app_id}"\n')
        done = cli("run", "--source", "highlevel", cwd=tmp_path, inherit=clean_env())

    assert done.returncode == 0, done.stderr
    store = tmp_path / ".dlt" / "highlevel_tokens.json"  # the default store
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert uploads_per_location(tmp_path / DB) == [("loc_a", 2), ("loc_b", 1)]


def test_prune_with_the_agency_app_says_when_the_write_scope_is_missing(tmp_path):
    """The app's location tokens have only csv.readonly: the DELETE is refused (renewed once),
    nothing is deleted, exit 2 naming the scope. With the scope granted the same command
    deletes (the cached read-only token is renewed once)."""
    fixture = agency({"loc_a": 6}, unfinished_share=0.0)
    failed = [r["_id"] for r in fixture.imports["loc_a"] if r["status"] == "failed"]
    with Simulator(fixture) as sim:
        env = {**agency_env(sim, fixture, tmp_path / "store.json", discover=False),
               "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / DB)}
        prune = ("highlevel-prune", "--location", "loc_a", "--status", "failed", "--yes")
        refused = cli(*prune, cwd=tmp_path, env=env, inherit=clean_env())
        deletes_refused = sim.requests(method="DELETE")
        fixture.oauth.scopes = ("socialplanner/csv.readonly", "socialplanner/csv.write")
        granted = cli(*prune, cwd=tmp_path, env=env, inherit=clean_env())

    message = " ".join(refused.stderr.split())
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert ("location loc_a: the token was refused for DELETE (HTTP 401: " in message
            and "deleting needs the socialplanner/csv.write scope" in message)
    assert [r.status for r in deletes_refused] == [401, 401]  # renewed once, then given up
    assert granted.returncode == 0, granted.stdout + granted.stderr
    assert {r["_id"] for r in fixture.imports["loc_a"]}.isdisjoint(failed) and failed


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_token_store_in_the_destination_for_ephemeral_runners(tmp_path, destination):
    """Each run starts in an empty folder (as a CI runner does): the rotated refresh token
    lives, encrypted, in the destination; run 2 refreshes with it. No token is readable in
    the destination; another key is a configuration error naming STORE_KEY."""
    from cryptography.fernet import Fernet

    fixture = agency({"loc_a": 2})
    key = Fernet.generate_key().decode()
    dataset = f"us_tok_{os.getpid()}_{destination}"
    home = f"tokens_{os.getpid()}_{destination}"  # parallel tests share the server
    target = ({"DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / DB)} if destination == "duckdb"
              else {"DESTINATION__POSTGRES__CREDENTIALS": postgres_dsn()})

    def ephemeral(n: int, **more: str) -> subprocess.CompletedProcess[str]:
        runner = tmp_path / f"runner{n}"
        runner.mkdir()
        return cli("run", "--source", "highlevel", "--destination", destination, "--dataset",
                   dataset, cwd=runner, inherit=clean_env(),
                   env={**agency_env(sim, fixture, Path("unused")), **target,
                        f"{OAUTH}TOKEN_STORE": "destination", f"{OAUTH}STORE_KEY": key,
                        f"{OAUTH}TOKEN_DATASET": home, "DLT_DATA_DIR": str(runner / "dlt"),
                        **more})

    with Simulator(fixture) as sim:
        first = ephemeral(1)
        fixture.oauth.expire_all()
        second = ephemeral(2)
        fixture.oauth.expire_all()
        wrong = ephemeral(3, **{f"{OAUTH}STORE_KEY": Fernet.generate_key().decode()})

    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert fixture.oauth.refreshes == 2 and fixture.oauth.spent[1] != fixture.oauth.refresh_token
    assert wrong.returncode == 2
    assert f"{OAUTH}STORE_KEY cannot open the tokens stored" in " ".join(wrong.stderr.split())
    if destination == "duckdb":
        stored = (tmp_path / DB).read_bytes()
    else:
        import psycopg2

        with psycopg2.connect(postgres_dsn()) as con, con.cursor() as cur:
            cur.execute(f"SELECT name, sealed FROM {home}._upload_status_tokens")
            stored = repr(cur.fetchall()).encode()
            for schema in (dataset, home):
                cur.execute(f"DROP SCHEMA {schema} CASCADE")
        assert len(eval(stored.decode())) == 1  # the app's one row
    for secret in fixture.oauth.all_secrets:
        assert secret.encode() not in stored


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_two_datasets_on_one_app_share_its_token_home(tmp_path, destination):
    """prod and staging, each with a destination store on the same app, interleaved (prod,
    staging, prod, staging) with every token expired between runs: every run refreshes the
    one chain, each with the token the run before it left."""
    from cryptography.fernet import Fernet

    fixture = agency({"loc_a": 2})
    key = Fernet.generate_key().decode()
    home = f"tokens_{os.getpid()}_{destination}_two"
    target = ({"DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / DB)} if destination == "duckdb"
              else {"DESTINATION__POSTGRES__CREDENTIALS": postgres_dsn()})
    datasets = [f"us_{name}_{os.getpid()}_{destination}" for name in ("prod", "staging")]
    done = []
    with Simulator(fixture) as sim:
        for _ in range(2):
            for dataset in datasets:
                done.append(cli("run", "--source", "highlevel", "--destination", destination,
                                "--dataset", dataset, cwd=tmp_path, inherit=clean_env(),
                                env={**agency_env(sim, fixture, Path("unused")), **target,
                                     f"{OAUTH}TOKEN_STORE": "destination",
                                     f"{OAUTH}STORE_KEY": key, f"{OAUTH}TOKEN_DATASET": home}))
                fixture.oauth.expire_all()
    if destination == "postgres":
        import psycopg2

        with psycopg2.connect(postgres_dsn()) as con, con.cursor() as cur:
            for schema in (*datasets, *(f"{d}_staging" for d in datasets), home):
                cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    assert [d.returncode for d in done] == [0] * 4, [d.stderr[-500:] for d in done]
    assert fixture.oauth.refreshes == 4  # one chain, each refresh with the newest token


def test_a_second_token_home_for_the_app_is_refused_before_anything_is_spent(tmp_path):
    """A run keeps the app's tokens in one file; another run into the same destination with
    another file (another machine's) is refused, naming the first home, before any refresh."""
    fixture = agency({"loc_a": 1})
    with Simulator(fixture) as sim:
        first = run_cli(tmp_path, agency_env(sim, fixture, tmp_path / "one.json"))
        spent = fixture.oauth.refreshes
        second = run_cli(tmp_path, agency_env(sim, fixture, tmp_path / "two.json"),
                         "--dataset", "staging")
    assert first.returncode == 0, first.stderr
    text = " ".join(second.stderr.split())
    assert second.returncode == 2, second.stderr
    assert f"already live in another home (file {tmp_path / 'one.json'}" in text, text
    assert fixture.oauth.refreshes == spent and not (tmp_path / "two.json").exists()


def test_an_app_installed_nowhere_is_a_configuration_error(tmp_path):
    fixture = agency({"loc_a": 1}, installed=[])
    with Simulator(fixture) as sim:
        done = run_cli(tmp_path, agency_env(sim, fixture, tmp_path / "store.json"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert (f"the agency app ({OAUTH}APP_ID) is installed in no location of company comp_sim"
            in " ".join(done.stderr.split()))


def _discovering_run(tmp_path: Path, fixture: HighLevelFixture
                     ) -> tuple[subprocess.CompletedProcess[str], list, set[str]]:
    """A run discovering the app's locations: its outcome, the discovery requests and the
    locations whose listing was read."""
    with Simulator(fixture) as sim:
        # over 100 company-level requests: above the 100 per 10 s the client keeps to by default
        done = run_cli(tmp_path, {**agency_env(sim, fixture, tmp_path / "store.json"),
                                  "SOURCES__HIGHLEVEL__RATE_LIMIT_REQUESTS": "1000"})
        discovery = sim.requests(path_pattern=r"/oauth/installedLocations")
        listed = {r.path.split("/")[2] for r in sim.requests(
            path_pattern=r"/social-media-posting/[^/]+/csv")}
    return done, discovery, listed


def test_discovery_pages_through_every_installed_location(tmp_path):
    locations = {f"loc_{i:03d}": i % 2 for i in range(101)}  # over one page of 100
    fixture = agency(locations)
    done, discovery, listed = _discovering_run(tmp_path, fixture)

    assert done.returncode == 0, done.stdout + done.stderr
    assert [r.query["skip"] for r in discovery] == ["0", "100"]
    assert listed == set(locations) and fixture.oauth.mints == 101
    assert read_duckdb(tmp_path / DB, "select count(*) from {ds}.highlevel_csv_uploads") == \
        [(50,)]


@pytest.mark.parametrize("hostile", ["count", "repeat"])
def test_discovery_trusts_no_count_and_stops_a_repeating_listing(tmp_path, hostile):
    locations = {f"loc_{i:03d}": 0 for i in range(250)}
    fixture = agency(locations)
    if hostile == "count":
        fixture.oauth.hostile_count = 10  # 10 of 250: pages come back full, so go on
    else:
        fixture.oauth.hostile_repeat = True  # every page the first
    done, discovery, listed = _discovering_run(tmp_path, fixture)

    if hostile == "count":
        assert done.returncode == 0, done.stdout + done.stderr
        assert listed == set(locations)
    else:
        assert done.returncode == 1, done.stdout + done.stderr
        assert len(discovery) == 2 and len(listed) == 100
        assert "the installedLocations listing repeats at skip=100" in " ".join(
            done.stderr.split())

"""The posts of HighLevel imports and their lists (`accountIds`, `medias`) over real HTTP into a
real DuckDB file: in the API's order, replaced with their import, values dlt must coerce, and
datasets whose lists dlt unnested itself."""

from __future__ import annotations

from typing import Any

import dlt

from sources.highlevel.fixture import HighLevelFixture

ACCOUNTS = "highlevel_csv_posts__account_ids"
MEDIAS = "highlevel_csv_posts__medias"


def expected_posts(fixture: HighLevelFixture) -> dict[str, list[dict[str, Any]]]:
    return {row["_id"]: fixture.posts(row) for rows in fixture.imports.values() for row in rows}


def lists_in_db(query, table: str, column: str) -> dict[tuple[str, int], list[Any]]:
    """(import, post index) -> the list's values in order, joined to the post as dlt's own
    nested tables are (`_dlt_parent_id` = the post's `_dlt_id`)."""
    rows = query(f"""select p.csv_id, p.post_index, list(l.{column} order by l._dlt_list_idx)
        from {{ds}}.{table} l join {{ds}}.highlevel_csv_posts p on l._dlt_parent_id = p._dlt_id
        group by all""")
    return {(csv_id, index): values for csv_id, index, values in rows}


def assert_posts_as_served(query, fixture: HighLevelFixture) -> None:
    served = expected_posts(fixture)
    posts = query("select csv_id, post_index, summary, error_message "
                  "from {ds}.highlevel_csv_posts order by 1, 2")
    assert posts == [(csv_id, i, post["summary"], post.get("errorMessage"))
                     for csv_id in sorted(served) for i, post in enumerate(served[csv_id])]
    assert lists_in_db(query, ACCOUNTS, "value") == {
        (csv_id, i): post["accountIds"] for csv_id, ps in served.items()
        for i, post in enumerate(ps)}
    assert lists_in_db(query, MEDIAS, "url") == {
        (csv_id, i): [m["url"] for m in post["medias"]] for csv_id, ps in served.items()
        for i, post in enumerate(ps)}
    for table, key in ((ACCOUNTS, "accountIds"), (MEDIAS, "medias")):
        total = sum(len(post[key]) for ps in served.values() for post in ps)
        # no row without its post, none twice
        assert query(f"""select count(*), count(distinct l._dlt_id), count(p._dlt_id)
            from {{ds}}.{table} l left join {{ds}}.highlevel_csv_posts p
            on l._dlt_parent_id = p._dlt_id""") == [(total, total, total)]

def test_posts_and_their_lists_load_in_the_apis_order_and_are_replaced_on_refetch(
        highlevel_sim, run, query):
    fixture = HighLevelFixture(locations={"loc1": 6, "loc2": 4}, seed=5)
    highlevel_sim(fixture, locations=["loc1", "loc2"])
    assert run().exit_code == 0
    assert_posts_as_served(query, fixture)

    report = run(full_refresh=True)  # every import's posts read and written again

    assert report.exit_code == 0, report.providers[0].errors
    assert_posts_as_served(query, fixture)
    loads = query(f"select count(distinct _dlt_load_id) from {{ds}}.{MEDIAS}")
    assert loads == [(1,)]  # all replaced by the second run's rows


class OddPosts(HighLevelFixture):
    """Posts with values dlt must coerce or unnest itself: a nested object, a list the API
    may add, a media with a nested list, a number where text was seen."""

    def posts(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        posts = super().posts(row)
        if posts and row["_id"] == self.imports["loc1"][0]["_id"]:
            posts[0].update(tags=["launch", "q4"], meta={"origin": "csv", "line": 2},
                            summary=12345,
                            scheduleDate="next tuesday")
            posts[0]["medias"][0]["thumbnails"] = [{"w": 64}, {"w": 128}]
        return posts


def test_posts_dlt_must_coerce_load_beside_the_arrow_written_ones(highlevel_sim, run, query):
    fixture = OddPosts(locations={"loc1": 5}, seed=3)
    highlevel_sim(fixture)
    odd = fixture.imports["loc1"][0]["_id"]
    assert fixture.posts(fixture.imports["loc1"][0]), "the fixture gives the import posts"

    for full_refresh in (False, True):  # the second run replaces every row
        report = run(full_refresh=full_refresh)
        assert report.exit_code == 0, report.providers[0].errors

        served = expected_posts(fixture)
        assert query("select count(*), count(distinct _dlt_id) from {ds}.highlevel_csv_posts"
                     ) == [(sum(map(len, served.values())),) * 2]
        assert query(f"""select t.value from {{ds}}.highlevel_csv_posts__tags t
            join {{ds}}.highlevel_csv_posts p on t._dlt_parent_id = p._dlt_id
            where p.csv_id = '{odd}' and p.post_index = 0 order by t._dlt_list_idx""") == [
            ("launch",), ("q4",)]
        assert query(f"""select meta__origin, meta__line, summary, schedule_date__v_text
            from {{ds}}.highlevel_csv_posts where csv_id = '{odd}' and post_index = 0""") == [
            ("csv", 2, "12345", "next tuesday")]
        assert query(f"""select count(*) from {{ds}}.{MEDIAS}__thumbnails t
            join {{ds}}.{MEDIAS} m on t._dlt_parent_id = m._dlt_id""") == [(2,)]
        assert lists_in_db(query, ACCOUNTS, "value") == {
            (csv_id, i): post["accountIds"] for csv_id, ps in served.items()
            for i, post in enumerate(ps)}


def test_a_dataset_whose_post_lists_dlt_unnested_keeps_them_so(highlevel_sim, run, query,
                                                               pipeline):
    """Datasets loaded before the lists were written as Arrow: dlt's nested tables (no
    `_dlt_load_id`, `parent` in the schema) keep being fed by dlt."""
    fixture = HighLevelFixture(locations={"loc1": 4}, seed=8)
    highlevel_sim(fixture)
    first = fixture.imports["loc1"][0]

    @dlt.source(name="highlevel")
    def earlier_version():
        @dlt.resource(name="highlevel_csv_posts", primary_key=("csv_id", "post_index"),
                      merge_key="csv_id", write_disposition={"disposition": "merge",
                                                             "strategy": "delete-insert"})
        def posts():
            yield [{"csv_id": first["_id"], "location_id": "loc1", "post_index": i, **post}
                   for i, post in enumerate(fixture.posts(first))]

        return posts

    assert not pipeline.run(earlier_version()).has_failed_jobs
    assert pipeline.default_schema.tables[ACCOUNTS]["parent"] == "highlevel_csv_posts"

    report = run(full_refresh=True)

    assert report.exit_code == 0, report.providers[0].errors
    assert_posts_as_served(query, fixture)
    schema = pipeline.schemas["highlevel"]
    assert schema.tables[ACCOUNTS]["parent"] == schema.tables[MEDIAS]["parent"] \
        == "highlevel_csv_posts"

"""Pure parts of a declaration: paths into an answer and the action of each HTTP code."""

from __future__ import annotations

import pytest

from sources.common.field_paths import MISSING, FieldPath
from sources.common.http_actions import BODY, FAIL, NOT_FOUND, REJECT, RETRY, CodeActions

ANSWER = {"data": {"attributes": {"state": "DONE", "empty": None}},
          "items": [{"status": "A"}, {"status": "B"}], "status-code": 7, "n": 0}


@pytest.mark.parametrize(("path", "value"), [
    ("data.attributes.state", "DONE"),
    ("$.data.attributes.state", "DONE"),
    ("data.attributes.empty", None),  # present and null: not missing
    ("items[1].status", "B"),
    ("items[*].status", "A"),  # several matches: the first
    ("$.'status-code'", 7),
    ("n", 0),
    ("data.attributes.stat", MISSING),
    ("data.attributes.state.deeper", MISSING),
    ("items[5].status", MISSING),
])
def test_a_path_finds_its_value_or_missing(path, value):
    assert FieldPath(path).find(ANSWER) == value if value is not MISSING else \
        FieldPath(path).find(ANSWER) is MISSING


@pytest.mark.parametrize("answer", [None, "text", 3, []])
def test_a_path_into_something_not_an_object_is_missing(answer):
    assert FieldPath("data.state").find(answer) is MISSING
    assert FieldPath("$.data.state").find(answer) is MISSING


@pytest.mark.parametrize("path", ["", "data.[x", "$$..", "a b"])
def test_a_path_that_cannot_be_parsed_is_named(path):
    with pytest.raises(ValueError) as error:
        FieldPath(path)
    assert repr(path) in str(error.value)


def test_declared_codes_lie_over_the_defaults_exact_then_class_then_default():
    actions = CodeActions({"410": "not_found", "202": "body", "4xx": "fail", "503": "retry"})
    assert [actions.of(c) for c in (200, 202, 201, 404, 410, 418, 429, 401, 500, 503)] == [
        BODY, BODY, REJECT, NOT_FOUND, NOT_FOUND, FAIL, RETRY, FAIL, FAIL, RETRY]
    assert CodeActions().of(302) == REJECT and CodeActions({"default": "fail"}).of(302) == FAIL


@pytest.mark.parametrize(("table", "named"), [
    ({"41": "fail"}, "'41'"), ({"6xx": "fail"}, "'6xx'"), ({"404": "gone"}, "'gone'")])
def test_a_wrong_code_or_action_is_named(table, named):
    with pytest.raises(ValueError) as error:
        CodeActions(table)
    assert named in str(error.value)

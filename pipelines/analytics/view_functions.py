"""The SQL functions views may use: each has a sample here whose rendering for every destination
is run there and compared with DuckDB's answer (`tests/test_view_functions.py`). sqlglot
transpiles some functions to another meaning (DuckDB's `DATE_DIFF('second', a, b)` becomes
MySQL's `DATEDIFF(b, a)`, in days) or to a name the target lacks (`MEDIAN` on SQLite), without
an error: a view using a function without a sample fails when the views are built, naming it.
To use one, add its sample and run that test on every destination."""

from __future__ import annotations

from sqlglot import exp

# sqlglot expression class name (a sample of the same function: `Name:what`) -> a sample
# expression using it (DuckDB dialect) whose value must be the same on every destination; the
# samples read no table
SAMPLES: dict[str, str] = {
    "Case": "CASE WHEN 2 > 1 THEN 'yes' ELSE 'no' END",
    "Cast": "CAST('12' AS BIGINT) + 1",
    "Cast:date": "CASE WHEN CAST(CAST('2026-03-04 05:06:07' AS TIMESTAMP) AS DATE) = "
                 "CAST('2026-03-04' AS DATE) THEN 1 ELSE 0 END",
    "Coalesce": "COALESCE(NULL, 'second', 'third')",
    "Count": "(SELECT COUNT(*) FROM (SELECT 1 AS one UNION ALL SELECT 2 AS one) AS t)",
    "CurrentTimestamp": "CASE WHEN CURRENT_TIMESTAMP > CAST('2020-01-01 00:00:00' AS "
                        "TIMESTAMPTZ) THEN 1 ELSE 0 END",
    "If": "IF(2 > 1, 'yes', 'no')",
    "Min": "(SELECT MIN(t.v) FROM (SELECT 'b' AS v UNION ALL SELECT 'a' AS v) AS t)",
    "Nullif": "COALESCE(NULLIF(3, 3), 7)",
    "Sum": "(SELECT SUM(t.v) FROM (SELECT 2 AS v UNION ALL SELECT 5 AS v) AS t)",
}
# logical connectives sqlglot models as functions: nothing to transpile
_NOT_CHECKED = frozenset({"And", "Or", "Not", "Paren"})


def function_name(node: exp.Func) -> str:
    return node.name.upper() if isinstance(node, exp.Anonymous) else type(node).__name__


def unchecked_functions(tree: exp.Expression) -> list[str]:
    """The functions of a parsed view whose rendering no sample checks, in name order."""
    checked = {key.split(":")[0] for key in SAMPLES} | _NOT_CHECKED
    return sorted({name for node in tree.find_all(exp.Func)
                   if (name := function_name(node)) not in checked})

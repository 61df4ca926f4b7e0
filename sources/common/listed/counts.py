"""What a listed provider's run counts, named in its own words (`ListedSpec.item_name`, ...):
"imports listed twice", "posts"."""

from __future__ import annotations

from sources.common.listed.spec import ListedSpec


class ListedCounts:
    """The counter names of one listed provider."""

    def __init__(self, spec: ListedSpec) -> None:
        item, scope = spec.item_name, spec.scope_name
        child = spec.children.name if spec.children is not None else "child"
        self.listing_pages = "listing pages"
        self.child_pages = f"{child} pages"
        self.read_incrementally = "listings read incrementally"
        self.listed_twice = f"{item}s listed twice"
        self.children = f"{child}s"
        self.children_fetched = f"{item}s with {child}s fetched"
        self.children_stopped = f"{child}s listings stopped"
        self.children_gone = f"{child}s unavailable ({item} gone)"
        self.daily_limit_spent = f"{scope}s over their daily limit"
        self.gone = f"{item}s gone from the listing (cancelled)"

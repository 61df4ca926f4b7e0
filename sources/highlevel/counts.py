"""What a HighLevel run counts besides every provider's counters."""

from __future__ import annotations

from sources.common.counts import Counted


class HighLevelCount(Counted):
    LISTING_PAGES = "listing pages"
    POST_PAGES = "post pages"
    READ_INCREMENTALLY = "listings read incrementally"
    LISTED_TWICE = "imports listed twice"
    POSTS = "posts"
    POSTS_FETCHED = "imports with posts fetched"
    POSTS_STOPPED = "posts listings stopped"
    POSTS_GONE = "posts unavailable (import gone)"
    DAILY_LIMIT_SPENT = "locations over their daily limit"
    GONE = "imports gone from the listing (cancelled)"

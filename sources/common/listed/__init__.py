"""The listed kind: providers whose jobs are read from a paged listing per scope (a location's
import history), optionally with a child list per item (an import's posts). The engine reads
each scope's listing newest first down to what the previous run left unfinished (`window`),
isolates scopes from each other and records that cannot be loaded (`listing`), infers deleted
items from complete reads (`gone`) and fetches child lists concurrently (`children`); a
provider states what differs in a `ListedSpec` (`spec`)."""

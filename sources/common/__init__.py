"""Pieces every provider source shares: declarations, statuses, pagination, change tracking."""

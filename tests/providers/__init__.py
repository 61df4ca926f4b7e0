"""Each provider's own tests (collected while its folder is registered: conftest.py)."""

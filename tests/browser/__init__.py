"""The browser suite (see conftest.py): a package, so its conftest never shadows tests/conftest.py."""

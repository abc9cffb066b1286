"""The commands run against both stores, as the API does: its fixtures serve here too."""

from tests.api.conftest import api, settings

__all__ = ["api", "settings"]

from tests.lightlyone.fixtures import lightly_api

__all__ = ["lightly_api"]

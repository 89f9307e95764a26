from tests.lightlyone.fixtures import lightly_api
from tests.operator.conftest import cluster

__all__ = ["cluster", "lightly_api"]

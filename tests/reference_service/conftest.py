"""Every test of the reference service is a client of its own (see refhelpers.CLIENT)."""
from __future__ import annotations

import itertools

import pytest

from refhelpers import new_client

_NUMBERS = itertools.count(1)


@pytest.fixture(autouse=True)
def own_client():
    new_client(next(_NUMBERS))

"""Session-wide trained entropy models (training them once keeps the suite fast)."""

from __future__ import annotations

import pytest
from entropy_helpers import trained_causal_prior, trained_hyperprior


@pytest.fixture(scope="session")
def hyperprior():
    return trained_hyperprior()


@pytest.fixture(scope="session")
def causal_prior():
    return trained_causal_prior()

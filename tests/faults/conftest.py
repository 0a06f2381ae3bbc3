"""Fault tests push tens of thousands of records (some of 1 MB) through the broker. Each test
module gets a broker of its own, so the session's broker stays light: a test there starts
every consumer group from the earliest record, as the contract says, and must not wade
through this module's load first."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka import KafkaProducer

from deploy.localbroker import LocalBroker, start_broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    running = start_broker(log=tmp_path_factory.mktemp("fault-broker") / "tansu.log")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def producer(broker: LocalBroker) -> Iterator[KafkaProducer]:
    made = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    yield made
    made.close()

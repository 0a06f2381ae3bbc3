"""Prometheus metrics shared by both services (each process has its own registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS_CONSUMED = Counter(
    "portal_records_consumed_total", "Kafka records read by the consumer", ["service", "topic"]
)
EVENTS_APPLIED = Counter(
    "portal_events_applied_total", "Inbound events applied to the event store", ["service", "topic", "type"]
)
EVENTS_REJECTED = Counter(
    "portal_events_rejected_total",
    "Valid inbound events recorded as rejected (illegal in the current state)",
    ["service", "topic", "type"],
)
EVENTS_DUPLICATE = Counter(
    "portal_events_duplicate_total", "Inbound events whose id was already processed", ["service", "topic"]
)
RECORDS_DEAD_LETTERED = Counter(
    "portal_records_dead_lettered_total", "Records sent to the dead-letter topic", ["service", "topic"]
)
CONSUMER_LAG = Gauge(
    "portal_consumer_lag_records", "Records behind the partition's end", ["service", "topic", "partition"]
)
PROJECTION_LAG = Gauge(
    "portal_projection_lag_events", "Event-store notifications not yet applied", ["service", "follower"]
)
OUTBOX_PENDING = Gauge(
    "portal_outbox_pending_messages",
    "Outbox messages the relay found waiting in its last pass (up to a batch); 0 once caught up",
    ["service"],
)
OUTBOX_PUBLISHED = Counter(
    "portal_outbox_published_total", "Events relayed from the outbox to Kafka", ["service", "topic"]
)
EMAILS = Counter(
    "portal_emails_total", "Emails by outcome (sent, failed, retried)", ["service", "kind", "outcome"]
)
HTTP_LATENCY = Histogram(
    "portal_http_request_seconds",
    "HTTP request latency",
    ["service", "method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
LEADER = Gauge(
    "portal_leader", "1 while this instance leads its service (relays the outbox; the notifier's sending)", ["service"]
)

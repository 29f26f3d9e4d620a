-- Change events: what every replica tails to tell its subscribers, the pollers' snapshots,
-- and the webhook delivery queue. Portable SQL, as 0001 (BIGINT epoch milliseconds, TEXT
-- ids made by the gateway, JSON as TEXT).

-- The last event number handed out. An event takes the next number in the transaction that
-- inserts it, holding this row's lock until it commits: numbers become visible in order, so
-- a replica that has read up to N never misses a later-committed N-1.
CREATE TABLE change_counter (
    name  TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL
);
INSERT INTO change_counter (name, seq) VALUES ('events', 0);

-- One row per change (`body`: the change as JSON), kept a while for the replicas tailing it;
-- `origin` names the process that published it (it told its own subscribers already).
CREATE TABLE change_events (
    seq     BIGINT PRIMARY KEY,
    origin  TEXT NOT NULL,
    body    TEXT NOT NULL,
    at_ms   BIGINT NOT NULL
);
CREATE INDEX change_events_at ON change_events (at_ms);

-- A poller's last listing of a provider: a hash of each record as the gateway reads it.
-- Writes through the gateway keep it up to date, so the next poll does not report them again.
CREATE TABLE poll_snapshots (
    provider   TEXT NOT NULL,
    native_id  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    PRIMARY KEY (provider, native_id)
);

-- When a provider's first listing (the baseline: no events) was recorded, and its last poll.
CREATE TABLE poll_state (
    provider     TEXT PRIMARY KEY,
    baseline_ms  BIGINT NOT NULL,
    polled_ms    BIGINT NOT NULL
);

-- One row per (change, webhook url) to deliver. `status` is pending or delivered; a pending
-- row is sent by the one worker whose lease (`claimed_by` until `claimed_until`) holds it,
-- again and again with backoff until the endpoint answers 2xx.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    url              TEXT NOT NULL,
    kind             TEXT NOT NULL,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_ms  BIGINT NOT NULL,
    claimed_until    BIGINT,
    claimed_by       TEXT,
    last_status      BIGINT,
    last_error       TEXT,
    created_ms       BIGINT NOT NULL,
    delivered_ms     BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (url, status, next_attempt_ms);
CREATE INDEX webhook_deliveries_delivered ON webhook_deliveries (status, delivered_ms);

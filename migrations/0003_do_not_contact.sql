-- The do-not-contact registry and the outbox that propagates it to providers (portable SQL,
-- as 0001: TEXT ids made by the gateway, BIGINT epoch milliseconds).

-- One row per registration: a phone (E.164) and/or an email (lower-cased), as one request
-- gave them. `entry_key` is "<phone>|<email>"; one live entry per key. A removed entry keeps
-- its row (`removed_ms`), so adding the same phone again later makes a new entry.
CREATE TABLE do_not_contact_entries (
    id          TEXT PRIMARY KEY,
    entry_key   TEXT NOT NULL,
    phone       TEXT,
    email       TEXT,
    reason      TEXT,
    created_ms  BIGINT NOT NULL,
    removed_ms  BIGINT
);
CREATE UNIQUE INDEX do_not_contact_entries_live_key
    ON do_not_contact_entries (entry_key) WHERE removed_ms IS NULL;
CREATE INDEX do_not_contact_entries_phone
    ON do_not_contact_entries (phone) WHERE removed_ms IS NULL;
CREATE INDEX do_not_contact_entries_email
    ON do_not_contact_entries (email) WHERE removed_ms IS NULL;
CREATE INDEX do_not_contact_entries_order
    ON do_not_contact_entries (created_ms, id);

-- One row per (entry, provider): where the propagation stands. `status` is pending, applied,
-- failed or unsupported; only pending rows are sent again, each by the one worker whose lease
-- (`claimed_by` until `claimed_until`) holds it, so a process that dies mid-call releases it
-- when the lease runs out.
CREATE TABLE do_not_contact_outbox (
    entry_id         TEXT NOT NULL REFERENCES do_not_contact_entries (id),
    provider         TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_ms  BIGINT NOT NULL,
    claimed_until    BIGINT,
    claimed_by       TEXT,
    message          TEXT,
    error_code       TEXT,
    updated_ms       BIGINT NOT NULL,
    PRIMARY KEY (entry_id, provider)
);
CREATE INDEX do_not_contact_outbox_due
    ON do_not_contact_outbox (provider, status, next_attempt_ms);

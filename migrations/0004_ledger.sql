-- The ledger of records the gateway wrote at a provider it cannot read back (Mainbrainer
-- documents no read endpoint): portable SQL, as 0001 (BIGINT epoch milliseconds, JSON as TEXT).

-- One row per record: the provider's record as the gateway's writes left it (`record`, JSON),
-- when the gateway first and last wrote it, and `deleted_ms` once the gateway learned it is
-- gone (kept as a tombstone). `writes` counts the writes; a write bumps it first, so writes to
-- one record take turns in the store whichever process makes them.
CREATE TABLE ledger_records (
    provider    TEXT NOT NULL,
    native_id   TEXT NOT NULL,
    record      TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    deleted_ms  BIGINT,
    writes      BIGINT NOT NULL,
    PRIMARY KEY (provider, native_id)
);
-- Listings go in the order records were first written.
CREATE INDEX ledger_records_order ON ledger_records (provider, created_ms, native_id);

-- Every write: what was sent and what the provider answered (JSON), its operation (create,
-- update, upsert, do_not_contact…) and when. `seq` is the record's `writes` after it.
CREATE TABLE ledger_writes (
    provider    TEXT NOT NULL,
    native_id   TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    operation   TEXT NOT NULL,
    sent        TEXT NOT NULL,
    answered    TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    PRIMARY KEY (provider, native_id, seq)
);

-- The gateway's own state. Portable SQL: the same migrations run on SQLite and PostgreSQL
-- (ids are TEXT made by the gateway, times are BIGINT epoch milliseconds, JSON is TEXT).

-- Leases: a claim on a name (a match key, a worker's job) held until `until_ms`, so a process
-- that dies releases what it held when its lease runs out.
CREATE TABLE claims (
    name      TEXT PRIMARY KEY,
    holder    TEXT NOT NULL,
    until_ms  BIGINT NOT NULL
);

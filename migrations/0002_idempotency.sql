-- Idempotency keys on mutations: one row per (caller scope, key), holding the request's hash
-- (to refuse another body under the same key) and, once the request has run, its answer.
-- `state` is 'running' while a process works on it, holding it until `claimed_until_ms`
-- (renewed while it runs), then 'done' with the response. A row is forgotten after
-- `expires_ms` (`[store] idempotency_ttl_secs` after it was taken).
CREATE TABLE idempotency (
    scope             TEXT NOT NULL,
    idempotency_key   TEXT NOT NULL,
    request_hash      TEXT NOT NULL,
    state             TEXT NOT NULL,
    holder            TEXT NOT NULL,
    claimed_until_ms  BIGINT NOT NULL,
    response_status   BIGINT,
    response_type     TEXT,
    response_body     TEXT,
    created_ms        BIGINT NOT NULL,
    expires_ms        BIGINT NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);

CREATE INDEX idempotency_expires ON idempotency (expires_ms);

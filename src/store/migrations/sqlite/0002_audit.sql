-- The audit log: append-only and hash-chained (src/access/audit.rs documents the hash). The
-- gateway's single writer assigns `seq` (1, 2, 3, … without gaps) and only ever inserts.

CREATE TABLE audit_log (
    seq          INTEGER PRIMARY KEY,
    at           TEXT NOT NULL,             -- RFC 3339, milliseconds, UTC ("Z")
    subject      TEXT NOT NULL,
    organisation TEXT NOT NULL,
    operation    TEXT NOT NULL,
    case_id      TEXT,
    fields       TEXT NOT NULL DEFAULT '[]', -- JSON array of field paths
    decision     TEXT NOT NULL,             -- READ, DENIED or WRITE
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_log_by_subject ON audit_log (subject, at);
CREATE INDEX audit_log_by_case ON audit_log (case_id, at);
CREATE INDEX audit_log_by_time ON audit_log (at);

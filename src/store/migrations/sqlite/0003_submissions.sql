-- Information Member States submit on cases they are concerned with (res. 2589 §6), held for
-- review by a UN case officer before it enters the record.
CREATE TABLE case_submissions (
    id           TEXT PRIMARY KEY,
    case_id      TEXT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    organisation TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    content      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('PENDING', 'ACCEPTED', 'REJECTED')),
    submitted_at TEXT NOT NULL,
    reviewed_by  TEXT,
    reviewed_at  TEXT,
    review_note  TEXT
);
CREATE INDEX case_submissions_by_case ON case_submissions (case_id, submitted_at);
CREATE INDEX case_submissions_by_status ON case_submissions (status, submitted_at);

-- The UN case store, SQLite dialect. Dates are ISO 8601 text (YYYY-MM-DD), timestamps RFC 3339 UTC
-- text: both sort correctly as text and read the same in the PostgreSQL dialect.

CREATE TABLE missions (
    code              TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    kind              TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('ACTIVE', 'CLOSED')),
    start_date        TEXT,
    end_date          TEXT,
    host_territories  TEXT NOT NULL DEFAULT '',   -- alpha-3 codes, comma-separated, main first
    location_name     TEXT,
    latitude          REAL,
    longitude         REAL,
    focal_point_name  TEXT,
    focal_point_email TEXT,
    source            TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE cases (
    id                 TEXT PRIMARY KEY,
    reference          TEXT NOT NULL UNIQUE,
    mission_code       TEXT NOT NULL REFERENCES missions (code),
    host_state         TEXT,
    incident_date      TEXT NOT NULL,
    reported_date      TEXT,
    region             TEXT,
    locality           TEXT,
    latitude           REAL,
    longitude          REAL,
    summary            TEXT,
    perpetrator_groups TEXT NOT NULL DEFAULT '[]',  -- JSON array of strings
    victim_count       INTEGER NOT NULL DEFAULT 0,
    version            INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    source             TEXT NOT NULL,
    import_key         TEXT UNIQUE,
    import_hash        TEXT,
    created_by         TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE INDEX cases_by_date ON cases (incident_date, id);
CREATE INDEX cases_by_mission ON cases (mission_code, incident_date);
CREATE INDEX cases_by_host_state ON cases (host_state, incident_date);
CREATE INDEX cases_by_victim_count ON cases (victim_count, id);
CREATE INDEX cases_by_source ON cases (source);

CREATE TABLE case_acts (
    case_id TEXT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    act     TEXT NOT NULL,
    PRIMARY KEY (case_id, act)
);
CREATE INDEX case_acts_by_act ON case_acts (act, case_id);

CREATE TABLE victims (
    id                   TEXT PRIMARY KEY,
    case_id              TEXT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    position             INTEGER NOT NULL,
    category             TEXT NOT NULL,
    contributing_country TEXT,
    nationality          TEXT,
    harm                 TEXT NOT NULL,
    gender               TEXT,
    name                 TEXT,
    service_number       TEXT,
    import_key           TEXT UNIQUE,
    created_by           TEXT NOT NULL,
    created_at           TEXT NOT NULL
);
CREATE INDEX victims_by_case ON victims (case_id, position);
CREATE INDEX victims_by_category ON victims (category, case_id);
CREATE INDEX victims_by_nationality ON victims (nationality, case_id);
CREATE INDEX victims_by_contributor ON victims (contributing_country, case_id);

CREATE TABLE follow_up_actions (
    id          TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    description TEXT NOT NULL,
    taken_on    TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX follow_ups_by_case ON follow_up_actions (case_id, taken_on);

CREATE TABLE national_references (
    id          TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    state       TEXT NOT NULL,
    authority   TEXT NOT NULL,
    reference   TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    UNIQUE (case_id, state, reference)
);
CREATE INDEX national_references_by_reference ON national_references (state, reference);

CREATE TABLE capacity_building_assistance (
    id           TEXT PRIMARY KEY,
    host_state   TEXT NOT NULL,
    kind         TEXT NOT NULL,
    provider     TEXT NOT NULL,
    status       TEXT NOT NULL,
    period_start TEXT,
    period_end   TEXT,
    description  TEXT,
    version      INTEGER NOT NULL DEFAULT 1,
    recorded_by  TEXT NOT NULL,
    recorded_at  TEXT NOT NULL
);
CREATE INDEX assistance_by_host_state ON capacity_building_assistance (host_state);

CREATE TABLE assistance_cases (
    assistance_id TEXT NOT NULL REFERENCES capacity_building_assistance (id) ON DELETE CASCADE,
    case_id       TEXT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    PRIMARY KEY (assistance_id, case_id)
);
CREATE INDEX assistance_cases_by_case ON assistance_cases (case_id);

CREATE TABLE import_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset     TEXT NOT NULL,
    inserted    INTEGER NOT NULL,
    updated     INTEGER NOT NULL,
    unchanged   INTEGER NOT NULL,
    finished_at TEXT NOT NULL
);

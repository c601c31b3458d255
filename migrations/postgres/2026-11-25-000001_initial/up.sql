-- printfarm initial schema (Postgres dialect). Keep in step with migrations/sqlite: same tables, same columns.
-- Timestamps are written by the application in UTC (no DB defaults); JSON is stored as text.

CREATE TABLE organizations (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    auto_start_queue BOOLEAN NOT NULL,
    actual_jobs_hours INTEGER NOT NULL,
    report_fields TEXT,
    material_prices TEXT,
    currency TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    organization_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    firstname TEXT NOT NULL,
    lastname TEXT NOT NULL,
    company TEXT NOT NULL,
    access_role INTEGER NOT NULL,
    gdpr INTEGER NOT NULL,
    google_sub TEXT UNIQUE,
    balance DOUBLE PRECISION,
    monthly_quota INTEGER,
    quota_used INTEGER NOT NULL,
    quota_period TEXT,
    disabled BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX users_organization_idx ON users (organization_id);

CREATE TABLE sessions (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    gdpr_pending TEXT,
    client_addr TEXT,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

CREATE TABLE login_failures (
    id BIGSERIAL PRIMARY KEY,
    throttle_key TEXT NOT NULL,
    failed_at TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_key_idx ON login_failures (throttle_key, failed_at);

CREATE TABLE user_tokens (
    id BIGSERIAL PRIMARY KEY,
    purpose TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    confirmed_at TIMESTAMP,
    used_at TIMESTAMP
);

CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);

CREATE TABLE workgroups (
    id BIGSERIAL PRIMARY KEY,
    organization_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    join_password TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX workgroups_organization_idx ON workgroups (organization_id);

CREATE TABLE workgroup_members (
    id BIGSERIAL PRIMARY KEY,
    workgroup_id BIGINT NOT NULL REFERENCES workgroups(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    rights INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (workgroup_id, user_id)
);
CREATE INDEX workgroup_members_user_idx ON workgroup_members (user_id);

CREATE TABLE printer_types (
    id BIGINT PRIMARY KEY,
    short_name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    vendor TEXT NOT NULL,
    industrial BOOLEAN NOT NULL,
    software_version TEXT NOT NULL,
    printer_parameters TEXT NOT NULL,
    profile TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE printers (
    id BIGSERIAL PRIMARY KEY,
    organization_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    owner_user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    printer_type_id BIGINT REFERENCES printer_types(id),
    name TEXT NOT NULL,
    snr TEXT NOT NULL,
    host_num TEXT NOT NULL,
    local_ip TEXT NOT NULL,
    vid TEXT NOT NULL,
    pid TEXT NOT NULL,
    mac TEXT NOT NULL,
    agent_version TEXT,
    auth_token_hash TEXT UNIQUE,
    state TEXT NOT NULL,
    percent DOUBLE PRECISION NOT NULL,
    temps TEXT,
    target_temps TEXT,
    report TEXT,
    last_error TEXT,
    current_job_id BIGINT,
    tray_clear BOOLEAN NOT NULL,
    filaments TEXT,
    camera_watched_until TIMESTAMP,
    last_seen_at TIMESTAMP,
    next_command_number BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX printers_organization_idx ON printers (organization_id);

CREATE TABLE printer_workgroups (
    id BIGSERIAL PRIMARY KEY,
    printer_id BIGINT NOT NULL REFERENCES printers(id) ON DELETE CASCADE,
    workgroup_id BIGINT NOT NULL REFERENCES workgroups(id) ON DELETE CASCADE,
    UNIQUE (printer_id, workgroup_id)
);
CREATE INDEX printer_workgroups_workgroup_idx ON printer_workgroups (workgroup_id);

CREATE TABLE registration_codes (
    id BIGSERIAL PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    device_key TEXT NOT NULL,
    agent_info TEXT NOT NULL,
    printer_type_alias TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    redeemed_by_user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    redeemed_at TIMESTAMP,
    printer_id BIGINT REFERENCES printers(id) ON DELETE CASCADE,
    pending_auth_token TEXT,
    delivered_at TIMESTAMP
);
CREATE INDEX registration_codes_device_idx ON registration_codes (device_key);

CREATE TABLE printer_shares (
    id BIGSERIAL PRIMARY KEY,
    printer_id BIGINT NOT NULL REFERENCES printers(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL,
    number_of_prints INTEGER,
    prints_used INTEGER NOT NULL,
    created_by_user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (printer_id, email)
);
CREATE INDEX printer_shares_email_idx ON printer_shares (email);

CREATE TABLE projects (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    color TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX projects_user_idx ON projects (user_id);

CREATE TABLE files (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    organization_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    project_id BIGINT REFERENCES projects(id) ON DELETE SET NULL,
    state TEXT NOT NULL,
    filename TEXT NOT NULL,
    kind TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    storage_key TEXT NOT NULL,
    upload_type_id INTEGER NOT NULL,
    upload_soft_name TEXT,
    printer_type_id BIGINT REFERENCES printer_types(id),
    slicer TEXT,
    zip BOOLEAN NOT NULL,
    analysis TEXT,
    slicer_settings TEXT,
    picture TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX files_user_idx ON files (user_id);

-- One row per named counter. Jobs take the next `job_changes` value inside their write transaction:
-- the row lock orders commits by counter value, so a `prev_time` cursor never skips a change.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('job_changes', 0);

CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    organization_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    printer_id BIGINT NOT NULL REFERENCES printers(id) ON DELETE CASCADE,
    file_id BIGINT NOT NULL REFERENCES files(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    share_id BIGINT REFERENCES printer_shares(id) ON DELETE SET NULL,
    status_id INTEGER NOT NULL,
    change_seq BIGINT NOT NULL,
    notes TEXT,
    percent DOUBLE PRECISION NOT NULL,
    print_time INTEGER NOT NULL,
    printing_duration INTEGER NOT NULL,
    material_type TEXT NOT NULL,
    layer_height DOUBLE PRECISION NOT NULL,
    color_numbers INTEGER NOT NULL,
    extruders TEXT NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    heated_bed BOOLEAN NOT NULL,
    heated_bed_temperature INTEGER NOT NULL,
    raft BOOLEAN NOT NULL,
    supports BOOLEAN NOT NULL,
    file_cost DOUBLE PRECISION,
    cost DOUBLE PRECISION,
    charged BOOLEAN NOT NULL,
    cancel_reason TEXT,
    cancel_details TEXT,
    cancelled_by_user_id BIGINT REFERENCES users(id),
    started_by_user_id BIGINT REFERENCES users(id),
    feedback TEXT,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    ended_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX jobs_printer_idx ON jobs (printer_id, id);
CREATE INDEX jobs_change_seq_idx ON jobs (printer_id, change_seq);
CREATE INDEX jobs_org_ended_idx ON jobs (organization_id, ended_at);
CREATE INDEX jobs_org_created_idx ON jobs (organization_id, created_at);

CREATE TABLE printer_commands (
    id BIGSERIAL PRIMARY KEY,
    printer_id BIGINT NOT NULL REFERENCES printers(id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    command TEXT NOT NULL,
    payload TEXT,
    job_id BIGINT REFERENCES jobs(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    result TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    finished_at TIMESTAMP,
    UNIQUE (printer_id, number)
);
CREATE INDEX printer_commands_pending_idx ON printer_commands (printer_id, status, number);

CREATE TABLE camera_tokens (
    id BIGSERIAL PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    printer_id BIGINT REFERENCES printers(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

CREATE TABLE camera_frames (
    printer_id BIGINT PRIMARY KEY REFERENCES printers(id) ON DELETE CASCADE,
    jpeg BYTEA NOT NULL,
    received_at TIMESTAMP NOT NULL
);

CREATE TABLE slice_jobs (
    id BIGSERIAL PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    file_id BIGINT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    output_file_id BIGINT REFERENCES files(id) ON DELETE SET NULL,
    slicer_id INTEGER NOT NULL,
    profile TEXT NOT NULL,
    printer_id BIGINT REFERENCES printers(id) ON DELETE SET NULL,
    start_print BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    stderr TEXT,
    attempts INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    print_job_id BIGINT REFERENCES jobs(id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP
);
CREATE INDEX slice_jobs_status_idx ON slice_jobs (status, created_at);

CREATE TABLE upload_ids (
    id BIGSERIAL PRIMARY KEY,
    upload_id TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    file_id BIGINT REFERENCES files(id) ON DELETE SET NULL
);

CREATE TABLE quotes (
    id BIGSERIAL PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    file_id BIGINT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    slice_job_id BIGINT REFERENCES slice_jobs(id) ON DELETE SET NULL,
    printer_config TEXT NOT NULL,
    quote_config TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    gcode_file_id BIGINT REFERENCES files(id) ON DELETE SET NULL,
    estimated_time_seconds BIGINT,
    filament_used_mm DOUBLE PRECISION,
    filament_weight DOUBLE PRECISION,
    filament_cost DOUBLE PRECISION,
    time_cost DOUBLE PRECISION,
    total_price DOUBLE PRECISION,
    currency TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX quotes_user_idx ON quotes (user_id);

-- The farm queue (printfarm extension, issue #18): jobs that name a printer type, a workgroup
-- or a list of printers instead of one printer, with a number of copies. Each copy is a row
-- here (the ledger); once a dispatcher assigns it, it prints as an ordinary job row that
-- points back to it.

-- A location or power circuit: at most max_heating of its printers heat at once and at most
-- max_downloads fetch G-code at once (null: no limit).
CREATE TABLE power_circuits (
    id BIGSERIAL PRIMARY KEY,
    organization_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    max_heating INTEGER,
    max_downloads INTEGER,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (organization_id, name)
);

ALTER TABLE printers ADD COLUMN circuit_id BIGINT REFERENCES power_circuits(id) ON DELETE SET NULL;
-- In maintenance while the note is set: the printer takes no jobs.
ALTER TABLE printers ADD COLUMN maintenance_note TEXT;
ALTER TABLE printers ADD COLUMN maintenance_since TIMESTAMP;
-- The end of the last maintenance: the counters (print hours, filament) start there.
ALTER TABLE printers ADD COLUMN maintained_at TIMESTAMP;
-- Put the printer in maintenance by itself past these (null: never).
ALTER TABLE printers ADD COLUMN maintenance_hours_limit DOUBLE PRECISION;
ALTER TABLE printers ADD COLUMN maintenance_filament_limit_g DOUBLE PRECISION;

CREATE TABLE farm_jobs (
    id BIGSERIAL PRIMARY KEY,
    organization_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    file_id BIGINT NOT NULL REFERENCES files(id),
    -- The target: a printer type, a workgroup, or the printers listed in farm_job_printers.
    target_kind TEXT NOT NULL,
    printer_type_id BIGINT REFERENCES printer_types(id),
    workgroup_id BIGINT REFERENCES workgroups(id) ON DELETE CASCADE,
    copies INTEGER NOT NULL,
    -- What must be loaded (null: anything).
    material TEXT,
    color_hex TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    cancelled_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX farm_jobs_org_idx ON farm_jobs (organization_id, priority, id);

CREATE TABLE farm_job_printers (
    farm_job_id BIGINT NOT NULL REFERENCES farm_jobs(id) ON DELETE CASCADE,
    printer_id BIGINT NOT NULL REFERENCES printers(id) ON DELETE CASCADE,
    PRIMARY KEY (farm_job_id, printer_id)
);

-- One row per copy: waiting, printing (job_id names its job), done, failed (a retry makes it
-- wait again) or cancelled.
CREATE TABLE farm_copies (
    id BIGSERIAL PRIMARY KEY,
    farm_job_id BIGINT NOT NULL REFERENCES farm_jobs(id) ON DELETE CASCADE,
    copy_number INTEGER NOT NULL,
    state TEXT NOT NULL,
    job_id BIGINT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (farm_job_id, copy_number)
);
CREATE INDEX farm_copies_state_idx ON farm_copies (state, farm_job_id, copy_number);

ALTER TABLE jobs ADD COLUMN farm_copy_id BIGINT REFERENCES farm_copies(id) ON DELETE SET NULL;
-- The ledger's guard: a copy has at most one job queued, printing or finished, whatever
-- retries, crashes or instances do.
CREATE UNIQUE INDEX jobs_farm_copy_live_idx ON jobs (farm_copy_id) WHERE farm_copy_id IS NOT NULL AND status_id IN (11, 21, 77);

-- A slice may end in a farm job instead of one printer's job: the farm job asked for (JSON,
-- checked when the slice was asked for) and the farm job made when the slice is done.
ALTER TABLE slice_jobs ADD COLUMN farm_request TEXT;
ALTER TABLE slice_jobs ADD COLUMN farm_job_id BIGINT REFERENCES farm_jobs(id) ON DELETE SET NULL;

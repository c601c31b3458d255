-- Seeds an organization with a year of a large farm for bench/reports_csv.sh:
-- 500 users, 100 printers in 10 workgroups, :files files and :jobs jobs (psql variables),
-- created evenly over the last 363 days, ids ascending with time. Job i prints file
-- 1 + i % :files: with as many files as jobs every job has its own (the report's name cache
-- then finds nothing it knows).
-- Names carry what CSV must quote: commas, double quotes, line breaks and non-ASCII.
--
--   psql "$DB_URL" -v ON_ERROR_STOP=1 -v org=1 -v jobs=1000000 -v files=2000 -f bench/reports_seed.sql

BEGIN;

INSERT INTO users (organization_id, email, firstname, lastname, company, access_role, gdpr,
                   quota_used, disabled, created_at, updated_at)
SELECT :org, 'maker' || i || '@bench.example', 'Zoë ' || i, 'Ñuñez, "' || i || '"', '', 0, 3,
       0, false, now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'
FROM generate_series(1, 500) AS i;

INSERT INTO workgroups (organization_id, name, join_password, created_at)
SELECT :org, 'Lab ' || i, 'pw-' || i, now() AT TIME ZONE 'utc'
FROM generate_series(1, 10) AS i;

INSERT INTO printers (organization_id, printer_type_id, name, snr, host_num, local_ip, vid, pid,
                      mac, state, percent, tray_clear, next_command_number, created_at,
                      updated_at)
SELECT :org,
       (SELECT id FROM printer_types ORDER BY id
        OFFSET i % (SELECT count(*) FROM printer_types) LIMIT 1),
       'Printer, "' || i || '" ✓', 'BENCH-' || i, '', '', 'VIRT', 'VIRT', '', 'ready', 0, true,
       1, now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'
FROM generate_series(1, 100) AS i;

CREATE TEMP TABLE bench_ids ON COMMIT DROP AS
SELECT (SELECT array_agg(id ORDER BY id) FROM users WHERE email LIKE '%@bench.example') AS u,
       (SELECT array_agg(id ORDER BY id) FROM printers WHERE snr LIKE 'BENCH-%') AS p,
       (SELECT array_agg(id ORDER BY id) FROM workgroups
        WHERE organization_id = :org AND name LIKE 'Lab %') AS w;

-- Every printer in one workgroup, every other printer in a second one.
INSERT INTO printer_workgroups (printer_id, workgroup_id)
SELECT b.p[i], b.w[1 + i % 10] FROM bench_ids b, generate_series(1, 100) AS i
UNION ALL
SELECT b.p[i], b.w[1 + (i + 1) % 10] FROM bench_ids b, generate_series(2, 100, 2) AS i;

INSERT INTO files (user_id, organization_id, state, filename, kind, size, sha256, storage_key,
                   upload_type_id, zip, created_at, updated_at)
SELECT b.u[1 + i % 500], :org, 'ready', E'cube, "v2"\nstraße 🚀 ' || i || '.gcode', 'gcode',
       1000, '', 'bench/' || i, 0, false, now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'
FROM bench_ids b, generate_series(1, :files) AS i;

-- The files' ids by arithmetic from the first one (one INSERT into a fresh database takes
-- consecutive ids): indexing an array of a million ids would read the whole array per job.
ALTER TABLE bench_ids ADD COLUMN f0 BIGINT;
UPDATE bench_ids SET f0 = (SELECT min(id) FROM files WHERE storage_key LIKE 'bench/%');

-- Mostly finished; every 20th cancelled from the web, every 20th (+1) on the printer, every
-- 20th (+2) failed; the newest 20 queued or printing.
INSERT INTO jobs (organization_id, printer_id, file_id, user_id, status_id, change_seq, percent,
                  print_time, printing_duration, material_type, layer_height, color_numbers,
                  extruders, weight, heated_bed, heated_bed_temperature, raft, supports,
                  file_cost, cost, charged, cancel_reason, cancel_details, started_by_user_id,
                  feedback, created_at, started_at, ended_at, updated_at)
SELECT :org, b.p[1 + i % 100], b.f0 + i % :files, b.u[1 + i % 500], s.status, i, 100,
       CASE WHEN s.status IN (11, 21) THEN 0 ELSE d.secs END, d.secs, 'PLA', 0.2, 1,
       '{"R":215,"L":0}', d.weight, true, 60, false, false,
       round((d.weight * 0.025)::numeric, 2), round((d.weight * 0.025)::numeric, 2),
       s.status <> 11,
       CASE WHEN i % 20 = 0 THEN 'CANCELLED_WEB' WHEN i % 20 = 1 THEN 'CANCELLED_PRINTER'
            WHEN i % 20 = 2 THEN 'PRINTER_ERROR' END,
       CASE WHEN i % 20 = 0 THEN 'wrong colour, "oops"' END,
       CASE WHEN s.status <> 11 THEN b.u[1 + i % 500] END,
       CASE WHEN i % 50 = 0 THEN 'Great print 👍, thanks' END,
       t.created,
       CASE WHEN s.status <> 11 THEN t.created + interval '60 seconds' END,
       CASE WHEN s.status NOT IN (11, 21) THEN t.created + make_interval(secs => 60 + d.secs) END,
       t.created
FROM bench_ids b, generate_series(1, :jobs) AS i,
     LATERAL (SELECT (current_date - 363)::timestamp
                     + make_interval(secs => i * (363 * 86400.0 / :jobs)) AS created) t,
     LATERAL (SELECT 600 + i % 7200 AS secs, 5 + (i % 500) / 10.0 AS weight) d,
     LATERAL (SELECT CASE WHEN i > :jobs - 10 THEN 11 WHEN i > :jobs - 20 THEN 21
                          WHEN i % 20 IN (0, 1) THEN 45 WHEN i % 20 = 2 THEN 43
                          ELSE 77 END AS status) s;

COMMIT;

ANALYZE;

#!/usr/bin/env bash
# Slicing and instant-quote benchmark (issue #9), with the real PrusaSlicer.
#
#   bench/slicing_bench.sh                # SQLite, then Postgres
#   bench/slicing_bench.sh sqlite         # one backend (sqlite | postgres)
#
# Models come from bench/slicing_models.py (cube, sphere, 20k-triangle sphere, 100k-triangle
# torus, a T-shaped overhang). For each backend: a fresh database and a release server on a
# free port (files and staging in a temp dir, `slicer.max_concurrent` = BENCH_SLICER_CONCURRENCY,
# `v1.quote_wait_secs` 600 so quotes answer synchronously), a bench user and an API token, then
#   a. overhead: BENCH_REPS times, PrusaSlicer alone on BENCH_OVERHEAD_MODEL with the server's
#      own settings (the config block of a quote's G-code) and a fresh /v1 upload + quote of
#      the same model, alternating; median, min and max (bench/slicing_clients.py overhead);
#   b. throughput: BENCH_CLIENTS clients for BENCH_LOAD_SECS seconds, each quoting
#      BENCH_LOAD_MODEL (a fresh upload every second quote), while
#      bench/slicing_tree_sampler.py samples the CPU of the server and its prusa-slicer
#      children and counts the slicers running at once;
#   c. estimate: one quote of each of cube, sphere, torus100k and overhang (with
#      support_material), PrusaSlicer's footer time against our own G-code estimate (the
#      `estimated_time_s` of the quote's G-code file, read from the database).
# Before each part it waits for the 1-minute load average to fall below BENCH_MAX_LOAD and
# records `uptime` beside the figures. Raw outputs go to
# bench/results/<timestamp>-<commit>/ (BENCH_RESULTS_DIR), the tables to summary.md there.
#
# Environment (besides bench/lib.sh's PRINTFARM_BIN, BENCH_TARGET_DIR, BENCH_PG_URL,
# BENCH_MAX_LOAD, BENCH_LOAD_WAIT_SECS, BENCH_RESULTS_DIR):
#   BENCH_REPS                 repetitions of part a (default 5)
#   BENCH_OVERHEAD_MODEL       model of part a (default torus100k.stl)
#   BENCH_LOAD_MODEL           model of part b (default sphere20k.stl)
#   BENCH_CLIENTS              concurrent clients of part b (default 8)
#   BENCH_LOAD_SECS            duration of part b (default 120)
#   BENCH_SLICER_CONCURRENCY   the server's slicer.max_concurrent (default 1, the default)
#   BENCH_PARTS                which parts to run (default "a b c")
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_REPS="${BENCH_REPS:-5}"
BENCH_OVERHEAD_MODEL="${BENCH_OVERHEAD_MODEL:-torus100k.stl}"
BENCH_LOAD_MODEL="${BENCH_LOAD_MODEL:-sphere20k.stl}"
BENCH_CLIENTS="${BENCH_CLIENTS:-8}"
BENCH_LOAD_SECS="${BENCH_LOAD_SECS:-120}"
BENCH_SLICER_CONCURRENCY="${BENCH_SLICER_CONCURRENCY:-1}"
BENCH_PARTS="${BENCH_PARTS:-a b c}"
COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null; then COMMIT="$COMMIT-dirty"; fi
BENCH_RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)-$COMMIT}"
PRINTER_CONFIG='{"bed_size_x": 220, "bed_size_y": 220, "bed_size_z": 250}'

need_tools curl python3 prusa-slicer
backends=("$@")
[[ ${#backends[@]} -gt 0 ]] || backends=(sqlite postgres)
check_backends

SAMPLER_PID=""
stop_sampler() {
    if [[ -n "$SAMPLER_PID" ]]; then
        kill -TERM "$SAMPLER_PID" 2>/dev/null || true
        wait "$SAMPLER_PID" 2>/dev/null || true
        SAMPLER_PID=""
    fi
}
trap 'stop_sampler; cleanup_backend' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$BENCH_RESULTS_DIR"
MODELS="$BENCH_RESULTS_DIR/models"
python3 "$BENCH_DIR/slicing_models.py" "$MODELS" >"$BENCH_RESULTS_DIR/models.txt"
build_server
SUMMARY="$BENCH_RESULTS_DIR/summary.md"
{
    echo "# slicing bench $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $COMMIT, $(nproc) cores"
    echo
    echo "prusa-slicer: $(prusa-slicer --help 2>/dev/null | grep -m1 -o 'PrusaSlicer-[^ ]*')," \
        "slicer.max_concurrent = $BENCH_SLICER_CONCURRENCY, printer_config $PRINTER_CONFIG"
} >"$SUMMARY"

uptime_now() { uptime | sed 's/.*load average: /load /'; }

# sql BACKEND QUERY: one value from the bench database.
sql() {
    if [[ $1 == sqlite ]]; then sqlite3 "$DB_URL" "$2"; else pg_db -c "$2"; fi
}

api_token() {
    local answer
    answer="$(curl -fsS -X POST "$BASE/apiglobal/create_api_token" \
        --data-urlencode "session=$BENCH_SESSION" --data-urlencode "name=bench")" ||
        die "create_api_token failed"
    python3 -c 'import json,sys; print(json.load(sys.stdin)["message"]["token"])' <<<"$answer"
}

part_a() {
    local backend="$1" out="$BENCH_RESULTS_DIR/$backend-a-overhead.json"
    wait_for_quiet
    local before after
    before="$(uptime_now)"
    python3 "$BENCH_DIR/slicing_clients.py" overhead "$BASE" "$TOKEN" "$MODELS/$BENCH_OVERHEAD_MODEL" \
        "$PRINTER_CONFIG" "$BENCH_REPS" "$WORK_DIR/overhead" >"$out"
    after="$(uptime_now)"
    python3 - "$out" "$backend" "$before" "$after" >>"$SUMMARY" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); b = sys.argv[2]
s = r["summary"]
print(f"\n## {b}: a. PrusaSlicer alone vs a /v1 quote, {r['model']}, {r['reps']} runs (same settings, estimates within 5 s / 0.2 %: {r['same_settings']})\n")
print(f"uptime before: {sys.argv[3]}; after: {sys.argv[4]}\n")
print("| | median s | min s | max s |\n|---|---|---|---|")
names = {"slicer_alone_s": "prusa-slicer alone", "upload_s": "POST /v1/file (upload + analysis)",
         "quote_s": "POST /v1/quote (queue, slice, store, analyse)", "upload_quote_s": "upload + quote",
         "overhead_s": "overhead (upload + quote − slicer alone)"}
for k, name in names.items():
    print(f"| {name} | {s[k]['median']} | {s[k]['min']} | {s[k]['max']} |")
EOF
}

part_b() {
    local backend="$1" out="$BENCH_RESULTS_DIR/$backend-b-load.json" cpu="$BENCH_RESULTS_DIR/$backend-b-cpu.json"
    wait_for_quiet
    local before after
    before="$(uptime_now)"
    python3 "$BENCH_DIR/slicing_tree_sampler.py" "$SERVER_PID" "$cpu" &
    SAMPLER_PID=$!
    python3 "$BENCH_DIR/slicing_clients.py" load "$BASE" "$TOKEN" "$MODELS/$BENCH_LOAD_MODEL" \
        "$PRINTER_CONFIG" "$BENCH_CLIENTS" "$BENCH_LOAD_SECS" >"$out"
    stop_sampler
    after="$(uptime_now)"
    python3 - "$out" "$cpu" "$backend" "$before" "$after" "$BENCH_SLICER_CONCURRENCY" >>"$SUMMARY" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); c = json.load(open(sys.argv[2])); b = sys.argv[3]
limit = int(sys.argv[6])
print(f"\n## {b}: b. {r['clients']} clients quoting {r['model']} for {r['seconds']:.0f} s, slicer.max_concurrent = {limit}\n")
print(f"uptime before: {sys.argv[4]}; after: {sys.argv[5]}\n")
print("| quotes | quotes/min | latency median s | p95 s | max s | failures | server+slicers CPU mean cores | busiest 1 s | most slicers at once | s with 0/1/2… slicers |")
print("|---|---|---|---|---|---|---|---|---|---|")
l = r["latency_s"]
print(f"| {r['quotes']} | {r['quotes_per_minute']} | {l['median']} | {l['p95']} | {l['max']} | {r['failure_count']} "
      f"| {c['mean_cores']} of {c['cores']} | {c['max_cores_1s']} | {c['max_slicers']} (limit {limit}) | {c['slicer_seconds_by_count']} |")
if c["max_slicers"] > limit:
    print(f"\n**More slicers ran at once ({c['max_slicers']}) than slicer.max_concurrent ({limit}).**")
EOF
}

part_c() {
    local backend="$1" out="$BENCH_RESULTS_DIR/$backend-c-estimate.jsonl" model cfg answer qid analysis
    wait_for_quiet
    local before after
    before="$(uptime_now)"
    : >"$out"
    for model in cube.stl sphere.stl torus100k.stl overhang.stl; do
        cfg="$PRINTER_CONFIG"
        [[ $model == overhang.stl ]] && cfg='{"bed_size_x": 220, "bed_size_y": 220, "bed_size_z": 250, "support_material": true}'
        answer="$(python3 "$BENCH_DIR/slicing_clients.py" quote "$BASE" "$TOKEN" "$MODELS/$model" "$cfg")"
        qid="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["quote"]["quote_id"])' <<<"$answer")"
        [[ $qid =~ ^[0-9a-f-]+$ ]] || die "bad quote id $qid"
        analysis="$(sql "$backend" "SELECT f.analysis FROM quotes q JOIN files f ON f.id = q.gcode_file_id WHERE q.uuid = '$qid'")"
        python3 -c 'import json,sys; a=json.loads(sys.argv[1]); a["analysis"]=json.loads(sys.argv[2]); print(json.dumps(a))' \
            "$answer" "$analysis" >>"$out"
    done
    after="$(uptime_now)"
    python3 - "$out" "$backend" "$before" "$after" "$BENCH_RESULTS_DIR/models.txt" >>"$SUMMARY" <<'EOF'
import json, sys
tris = {l.split()[0]: int(l.split()[1]) for l in open(sys.argv[5])}
print(f"\n## {sys.argv[2]}: c. our G-code time estimate against PrusaSlicer's footer\n")
print(f"uptime before: {sys.argv[3]}; after: {sys.argv[4]}\n")
print("| model | triangles | PrusaSlicer (footer) | quote's estimated_time_seconds | ours | error % | filament g (footer / ours) |")
print("|---|---|---|---|---|---|---|")
def hms(s):
    s = round(s); return f"{s // 3600}h {s % 3600 // 60:02d}m {s % 60:02d}s"
for line in open(sys.argv[1]):
    r = json.loads(line); a = r["analysis"]
    theirs, ours = r["footer_seconds"], a["estimated_time_s"]
    name = r["model"] + (" (supports)" if r["model"] == "overhang.stl" else "")
    print(f"| {name} | {tris[r['model']]} | {r['footer_time']} ({theirs} s) | {r['quote']['estimated_time_seconds']} "
          f"| {hms(ours)} ({ours:.0f} s) | {(ours - theirs) / theirs * 100:+.2f} | {r['footer_grams']} / {a.get('filament_weight_g', 0):.2f} |")
EOF
}

for backend in "${backends[@]}"; do
    new_database "$backend"
    SERVER_ENV=(
        "PRINTFARM_SLICER__MAX_CONCURRENT=$BENCH_SLICER_CONCURRENCY"
        "PRINTFARM_V1__QUOTE_WAIT_SECS=600"
    )
    start_server "$backend"
    create_bench_user
    TOKEN="$(api_token)"
    for part in $BENCH_PARTS; do
        log "$backend: part $part"
        "part_$part" "$backend"
    done
    stop_server
    cp "$WORK_DIR/server.log" "$BENCH_RESULTS_DIR/$backend-server.log"
    cleanup_backend
done
log "results in $BENCH_RESULTS_DIR"
cat "$SUMMARY"

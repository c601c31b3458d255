#!/usr/bin/env bash
# Upload benchmark (files issue): end-to-end throughput and server memory of large G-code uploads
# through `POST /apiglobal/upload` (multipart part `file` + `session`), streamed from disk by curl.
#
#   bench/upload_bench.sh                 # SQLite, then Postgres
#   bench/upload_bench.sh sqlite          # one backend (sqlite | postgres)
#
# For every size in BENCH_UPLOAD_SIZES (MiB) the script generates a G-code file of about that
# size (once, cached in BENCH_DATA_DIR): the header of fixtures/cube_20mm.gcode (up to its first
# layer), its layer lines (;LAYER_CHANGE … the end G-code) repeated, and its end G-code and
# slicer-config footer, so it is real PrusaSlicer G-code that the server analyses at upload.
# Each backend gets a fresh server (PRINTFARM_STORAGE__MAX_UPLOAD_MB=2048, files and staging in
# a temporary folder), a bench user, and one small warm-up upload; then, for each size:
#   - wait until the 1-minute load average is below BENCH_MAX_LOAD (default 1.5);
#   - reset the server's peak-RSS counter (`echo 5 > /proc/PID/clear_refs`);
#   - sample the server (bench/proc_sampler.py: VmRSS, VmHWM, wchar, CPU every 20 ms);
#   - curl -F file=@PATH (streamed from disk), -w '%{http_code} %{time_total} %{speed_upload}'.
# Reported: MiB/s end to end (size / curl's time_total: body transfer + staging + analysis +
# preview + copy into the store + registration), the server's RSS before and after, its peak
# RSS (VmHWM after the reset, and the sampled maximum of VmRSS), its CPU seconds, and the phase
# split read from its write counter: body received and staged (wchar reached the size), then
# analysis + preview (until wchar grows again: the copy into the store).
#
# Environment (besides bench/lib.sh's PRINTFARM_BIN, BENCH_TARGET_DIR, BENCH_PG_URL,
# BENCH_MAX_LOAD, BENCH_LOAD_WAIT_SECS, BENCH_RESULTS_DIR):
#   BENCH_UPLOAD_SIZES   sizes in MiB (default "100 500")
#   BENCH_DATA_DIR       where the generated G-code files are kept (default $TMPDIR or /tmp,
#                        printfarm-bench-data); delete them afterwards if disk space matters
#   BENCH_GCODE_LAYOUT   repeat (default: the layers repeated in place, as described above) or
#                        stack (each copy raised by 20 mm: a tower of cubes)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_UPLOAD_SIZES="${BENCH_UPLOAD_SIZES:-100 500}"
BENCH_DATA_DIR="${BENCH_DATA_DIR:-${TMPDIR:-/tmp}/printfarm-bench-data}"
BENCH_GCODE_LAYOUT="${BENCH_GCODE_LAYOUT:-repeat}"
[[ $BENCH_GCODE_LAYOUT == repeat || $BENCH_GCODE_LAYOUT == stack ]] || die "BENCH_GCODE_LAYOUT is repeat or stack"
BENCH_RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/upload-$(date -u +%Y%m%dT%H%M%SZ)}"
FIXTURE="$REPO/fixtures/cube_20mm.gcode"

need_tools curl python3
backends=("$@")
[[ ${#backends[@]} -gt 0 ]] || backends=(sqlite postgres)
for b in "${backends[@]}"; do
    [[ $b == sqlite || $b == postgres ]] || die "unknown backend '$b' (sqlite | postgres)"
    [[ $b == sqlite ]] || need_tools psql
done

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

# generate_gcode MIB OUT: header + repeated layer lines + footer of the fixture, about MIB MiB.
# With BENCH_GCODE_LAYOUT=stack each copy's Z words are raised by 20 mm (a tall tower of cubes
# instead of cubes printed in place; see bench/README.md for why it matters).
generate_gcode() {
    if [[ $BENCH_GCODE_LAYOUT == stack ]]; then
        generate_gcode_stack "$@"
        return
    fi
    local mib="$1" out="$2" first_layer end_gcode tmp
    first_layer="$(grep -n '^;LAYER_CHANGE' "$FIXTURE" | head -n1 | cut -d: -f1)"
    end_gcode="$(grep -n '^;TYPE:Custom' "$FIXTURE" | tail -n1 | cut -d: -f1)"
    [[ -n "$first_layer" && -n "$end_gcode" && $first_layer -lt $end_gcode ]] ||
        die "cannot find the layers of $FIXTURE"
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/pf-gcode.XXXXXX")"
    sed -n "$first_layer,$((end_gcode - 1))p" "$FIXTURE" >"$tmp/body"
    # ~10 MiB chunk of whole layer blocks, then whole chunks / blocks up to the size.
    local body_size reps target
    body_size="$(stat -c %s "$tmp/body")"
    reps=$(((10 * 1048576 + body_size - 1) / body_size))
    for _ in $(seq 1 "$reps"); do cat "$tmp/body"; done >"$tmp/chunk"
    target=$((mib * 1048576))
    {
        sed -n "1,$((first_layer - 1))p" "$FIXTURE"
        local written=0 chunk_size
        chunk_size="$(stat -c %s "$tmp/chunk")"
        while ((written + chunk_size <= target)); do
            cat "$tmp/chunk"
            written=$((written + chunk_size))
        done
        while ((written < target)); do
            cat "$tmp/body"
            written=$((written + body_size))
        done
        sed -n "$end_gcode,\$p" "$FIXTURE"
    } >"$out.part"
    mv "$out.part" "$out"
    rm -rf "$tmp"
}

generate_gcode_stack() {
    python3 - "$FIXTURE" "$1" "$2.part" <<'PY'
import re, sys
src = open(sys.argv[1]).read().split("\n")
start = src.index(";LAYER_CHANGE")
end = max(i for i, l in enumerate(src) if l.startswith(";TYPE:Custom"))
head, body, tail = src[:start], src[start:end], src[end:]
target = int(sys.argv[2]) * 1048576
zword = re.compile(r" Z([-0-9.]+)")
with open(sys.argv[3], "w") as f:
    n = f.write("\n".join(head) + "\n")
    k = 0
    while n < target:
        dz = 20.0 * k
        lines = [
            zword.sub(lambda m: " Z%.3f" % (float(m.group(1)) + dz), l)
            if l.startswith(("G0 ", "G1 ")) and " Z" in l else l
            for l in body
        ]
        n += f.write("\n".join(lines) + "\n")
        k += 1
    f.write("\n".join(tail))
PY
    mv "$2.part" "$2"
}

gcode_for() { # gcode_for MIB -> path (generated once)
    local mib="$1" path
    path="$BENCH_DATA_DIR/cube_x_${mib}mib.gcode"
    [[ $BENCH_GCODE_LAYOUT == stack ]] && path="$BENCH_DATA_DIR/cube_stack_${mib}mib.gcode"
    mkdir -p "$BENCH_DATA_DIR"
    if [[ ! -s "$path" ]]; then
        log "generating $path (~$mib MiB of G-code from $(basename "$FIXTURE"))"
        generate_gcode "$mib" "$path"
    fi
    echo "$path"
}

kib_to_mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
jget() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"; }

# upload_one BACKEND MIB -> one table row
upload_one() {
    local backend="$1" mib="$2" path size out answer code t_total speed
    path="$(gcode_for "$mib")"
    size="$(stat -c %s "$path")"
    # Warm the page cache for the file, so that the client side reads from memory.
    cat "$path" >/dev/null
    wait_for_quiet
    out="$BENCH_RESULTS_DIR/$backend-${mib}mib"
    echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || log "warning: cannot reset VmHWM (clear_refs)"
    python3 "$BENCH_DIR/proc_sampler.py" "$SERVER_PID" "$out.sampler.json" --size "$size" &
    SAMPLER_PID=$!
    sleep 0.3
    log "$backend: uploading $(basename "$path") ($size bytes)"
    local curl_start
    curl_start="$(date +%s.%N)"
    answer="$(curl -sS -X POST "$BASE/apiglobal/upload" -F "session=$BENCH_SESSION" -F "file=@$path" \
        -o "$out.answer.json" -w '%{http_code} %{time_total} %{speed_upload}')" || die "curl failed: $answer"
    sleep 0.3
    stop_sampler
    read -r code t_total speed <<<"$answer"
    log "$backend ${mib} MiB: HTTP $code in ${t_total}s: $(cat "$out.answer.json")"
    [[ $code == 200 ]] || die "upload answered $code"
    grep -q '"file_id"' "$out.answer.json" || die "no file_id in the answer"

    local rss0 rss1 hwm rssmax cpu t_staged t_analysed mibs staged_s analyse_s store_s
    rss0="$(jget "$out.sampler.json" rss_start_kib)"
    rss1="$(jget "$out.sampler.json" rss_end_kib)"
    hwm="$(jget "$out.sampler.json" hwm_end_kib)"
    rssmax="$(jget "$out.sampler.json" rss_max_kib)"
    cpu="$(jget "$out.sampler.json" cpu_seconds)"
    t_staged="$(jget "$out.sampler.json" t_wchar_size)"
    t_analysed="$(jget "$out.sampler.json" t_wchar_size_grow)"
    mibs="$(awk -v s="$size" -v t="$t_total" 'BEGIN { printf "%.1f", s / 1048576 / t }')"
    # Sampler times are relative to its start; curl started `off` seconds later.
    local off
    off="$(awk -v a="$(jget "$out.sampler.json" t0_epoch)" -v b="$curl_start" 'BEGIN { printf "%.3f", b - a }')"
    staged_s="$(awk -v a="$t_staged" -v o="$off" 'BEGIN { if (a == "") print "?"; else printf "%.1f", a - o }')"
    analyse_s="$(awk -v a="$t_staged" -v b="$t_analysed" 'BEGIN { if (a == "" || b == "") print "?"; else printf "%.1f", b - a }')"
    store_s="$(awk -v b="$t_analysed" -v t="$t_total" -v o="$off" 'BEGIN { if (b == "") print "?"; else printf "%.1f", t - (b - o) }')"
    printf '| %s | %s | %.1f | %s | %s | %s | %s / %s / %s | %s | %s | %s | %s | %s | %s |\n' \
        "$backend" "$BENCH_GCODE_LAYOUT" "$(awk -v s="$size" 'BEGIN { print s / 1048576 }')" "$t_total" "$mibs" \
        "$(awk -v s="$speed" 'BEGIN { printf "%.1f", s / 1048576 }')" \
        "$staged_s" "$analyse_s" "$store_s" \
        "$(kib_to_mib "$rss0")" "$(kib_to_mib "$hwm")" "$(kib_to_mib "$rssmax")" "$(kib_to_mib "$rss1")" \
        "$cpu" "$LOAD_BEFORE" | tee -a "$TABLE"
}

bench_backend() {
    local backend="$1" mib
    new_database "$backend"
    SERVER_ENV=(PRINTFARM_STORAGE__MAX_UPLOAD_MB=2048)
    start_server "$backend"
    create_bench_user
    log "warm-up upload of $(basename "$FIXTURE")"
    upload_file "$FIXTURE" | grep -q '"file_id"' || die "warm-up upload failed"
    for mib in $BENCH_UPLOAD_SIZES; do
        upload_one "$backend" "$mib"
    done
    stop_server
    grep -v 'middleware::logger' "$WORK_DIR/server.log" >"$BENCH_RESULTS_DIR/$backend-server.log" || true
    cleanup_backend
}

build_server
mkdir -p "$BENCH_RESULTS_DIR"
TABLE="$BENCH_RESULTS_DIR/results.md"
log "results in $BENCH_RESULTS_DIR"
for mib in $BENCH_UPLOAD_SIZES; do gcode_for "$mib" >/dev/null; done
{
    echo "| backend | G-code layout | file MiB | total s | MiB/s end to end | curl speed_upload MiB/s | s: receive+stage / analyse+preview / store+register | RSS before MiB | peak RSS (VmHWM) MiB | sampled max RSS MiB | RSS after MiB | server CPU s | load before |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} | tee "$TABLE"
for b in "${backends[@]}"; do
    bench_backend "$b"
done
log "done; table in $TABLE"

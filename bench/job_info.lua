-- wrk script: POST /apiglobal/get_job_info (session BENCH_SESSION, a random job id in
-- [BENCH_JOB_MIN, BENCH_JOB_MAX]). Used by bench/jobs_bench.sh.
local session = os.getenv("BENCH_SESSION")
local lo = tonumber(os.getenv("BENCH_JOB_MIN") or "")
local hi = tonumber(os.getenv("BENCH_JOB_MAX") or "")
if session == nil or session == "" or lo == nil or hi == nil then
  error("BENCH_SESSION, BENCH_JOB_MIN and BENCH_JOB_MAX must be set")
end
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local prefix = "session=" .. session .. "&job_id="

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
end

function request()
  return wrk.format("POST", "/apiglobal/get_job_info", headers, prefix .. math.random(lo, hi))
end

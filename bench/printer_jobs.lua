-- wrk script: POST /apiglobal/get_printer_jobs (session BENCH_SESSION, a random printer id in
-- [BENCH_PRINTER_MIN, BENCH_PRINTER_MAX], limit 20). Used by bench/jobs_bench.sh.
local session = os.getenv("BENCH_SESSION")
local lo = tonumber(os.getenv("BENCH_PRINTER_MIN") or "")
local hi = tonumber(os.getenv("BENCH_PRINTER_MAX") or "")
if session == nil or session == "" or lo == nil or hi == nil then
  error("BENCH_SESSION, BENCH_PRINTER_MIN and BENCH_PRINTER_MAX must be set")
end
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local prefix = "session=" .. session .. "&limit=20&printer_id="

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
end

function request()
  return wrk.format("POST", "/apiglobal/get_printer_jobs", headers, prefix .. math.random(lo, hi))
end

-- With BENCH_THINK_MS set (bench/concurrency_bench.sh), each connection waits that long after
-- every answer: a fixed number of clients that do not saturate the machine.
local think = tonumber(os.getenv("BENCH_THINK_MS") or "")
if think ~= nil and think > 0 then
  function delay()
    return think
  end
end

-- wrk script of bench/soak.sh: the API clients' read mix, session BENCH_SESSION.
-- Per request one of: check_session, get_printers_list, get_printer_jobs (a random printer
-- in [1, BENCH_PRINTERS]), get_job_info (a random job in [1, BENCH_JOBS]), get_projects.
-- Per-call status counts and latencies come from the server's access log (soak.sh), since
-- wrk's latency histogram has no per-request label.
local session = os.getenv("BENCH_SESSION")
local printers = tonumber(os.getenv("BENCH_PRINTERS") or "")
local jobs = tonumber(os.getenv("BENCH_JOBS") or "")
if session == nil or session == "" or printers == nil or jobs == nil then
  error("BENCH_SESSION, BENCH_PRINTERS and BENCH_JOBS must be set")
end
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local s = "session=" .. session

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
end

function request()
  local r = math.random(1, 5)
  if r == 1 then
    return wrk.format("POST", "/apiglobal/check_session", headers, s)
  elseif r == 2 then
    return wrk.format("POST", "/apiglobal/get_printers_list", headers, s)
  elseif r == 3 then
    return wrk.format("POST", "/apiglobal/get_printer_jobs", headers,
      s .. "&printer_id=" .. math.random(1, printers) .. "&limit=20")
  elseif r == 4 then
    return wrk.format("POST", "/apiglobal/get_job_info", headers, s .. "&job_id=" .. math.random(1, jobs))
  end
  return wrk.format("POST", "/apiglobal/get_projects", headers, s)
end

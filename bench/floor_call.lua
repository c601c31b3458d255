-- wrk script: POST /apiglobal/<BENCH_CALL> with session BENCH_SESSION, for the read calls of
-- bench/floor_bench.sh that take no id or a printer id. With BENCH_CALL_PRINTER=1 every request
-- names a random printer_id in [BENCH_PRINTER_MIN, BENCH_PRINTER_MAX] (get_printer_shares).
local call = os.getenv("BENCH_CALL")
local session = os.getenv("BENCH_SESSION")
if call == nil or call == "" or session == nil or session == "" then
  error("BENCH_CALL and BENCH_SESSION must be set")
end
local with_printer = os.getenv("BENCH_CALL_PRINTER") == "1"
local lo = tonumber(os.getenv("BENCH_PRINTER_MIN") or "")
local hi = tonumber(os.getenv("BENCH_PRINTER_MAX") or "")
if with_printer and (lo == nil or hi == nil) then
  error("BENCH_PRINTER_MIN and BENCH_PRINTER_MAX must be set with BENCH_CALL_PRINTER=1")
end
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local path = "/apiglobal/" .. call
local body = "session=" .. session

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
end

function request()
  if with_printer then
    return wrk.format("POST", path, headers, body .. "&printer_id=" .. math.random(lo, hi))
  end
  return wrk.format("POST", path, headers, body)
end

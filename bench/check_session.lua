-- wrk script: POST /apiglobal/check_session with one session token (BENCH_SESSION),
-- obtained beforehand by a single login (login_load.sh does it with curl).
local session = os.getenv("BENCH_SESSION")
if session == nil or session == "" then
  error("BENCH_SESSION is not set")
end

wrk.method = "POST"
wrk.path = "/apiglobal/check_session"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "session=" .. session

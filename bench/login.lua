-- wrk script: POST /apiglobal/login with a form body (the bench user's credentials).
-- Credentials come from BENCH_EMAIL / BENCH_PASSWORD (login_load.sh sets them).
local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local email = os.getenv("BENCH_EMAIL") or "bench@example.com"
local password = os.getenv("BENCH_PASSWORD") or "bench-password-123"

wrk.method = "POST"
wrk.path = "/apiglobal/login"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "username=" .. urlencode(email) .. "&password=" .. urlencode(password)

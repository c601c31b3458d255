-- wrk script: each connection logs in once, then calls check_session with the session it
-- got, repeatedly. wrk keeps one Lua state per thread and no connection identity, so the
-- state is per thread: until the thread holds a session every new request is a login
-- (without pipelining that is one login per connection at start), afterwards every
-- request is check_session. done() prints how many of each were answered.
local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local email = os.getenv("BENCH_EMAIL") or "bench@example.com"
local password = os.getenv("BENCH_PASSWORD") or "bench-password-123"
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local login_body = "username=" .. urlencode(email) .. "&password=" .. urlencode(password)

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  session = nil
  logins, checks, bad = 0, 0, 0
end

function request()
  if session == nil then
    return wrk.format("POST", "/apiglobal/login", headers, login_body)
  end
  return wrk.format("POST", "/apiglobal/check_session", headers, "session=" .. session)
end

function response(status, hdrs, body)
  local token = body:match('"session"%s*:%s*"(%x+)"')
  if token then
    logins = logins + 1
    session = token
  elseif status == 200 then
    checks = checks + 1
  end
  if status ~= 200 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local l, c, b = 0, 0, 0
  for _, t in ipairs(threads) do
    l = l + t:get("logins")
    c = c + t:get("checks")
    b = b + t:get("bad")
  end
  io.write(string.format("mixed: logins=%d check_session=%d non-200=%d\n", l, c, b))
end

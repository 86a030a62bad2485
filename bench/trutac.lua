-- wrk script: POSTs the pre-generated signed TruTac events of
-- $BENCH_REQUESTS (see gen_requests.py), each thread taking every
-- nthreads-th one so every request carries a distinct event id. When a
-- thread runs out it starts over and counts a wrap: the run then sent
-- copies, which a deduplicating gateway answers without forwarding, so
-- run.sh refuses to report such a run.
--
-- Headers given with wrk's -H (e.g. "Connection: close", scenario 8) are
-- added to every request: wrk.format takes only the headers it is handed.
-- With $BENCH_DELAY_MS set (scenario 9), each connection waits a random
-- 0.5-1.5 times that before each request, its first included, so the
-- connections' requests spread out instead of arriving together.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local file = os.getenv("BENCH_REQUESTS")
  local path = os.getenv("BENCH_PATH") or "/"
  local f = assert(io.open(file, "r"))
  local first = f:read("*l")
  local p1, p2, p3 = first:match("^([^\t]*)\t([^\t]*)\t([^\t]*)$")
  ids, sigs = {}, {}
  -- Each thread has its own Lua state: the thread count comes from run.sh.
  local n, step, i = 0, tonumber(os.getenv("BENCH_THREADS") or "1"), 0
  for line in f:lines() do
    if i % step == tid then
      local id, sig = line:match("^([^\t]+)\t(%x+)$")
      n = n + 1
      ids[n] = id
      sigs[n] = sig
    end
    i = i + 1
  end
  f:close()
  count, next_index, wraps = n, 1, 0
  parts = { p1, p2, p3 }
  req_path = path
  extra = {}
  for k, v in pairs(wrk.headers) do
    if k ~= "Host" then extra[k] = v end
  end
  math.randomseed(os.time() * 64 + tid)
end

-- wrk asks delay() only if the script defines it when loaded.
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if delay_ms then
  function delay()
    return math.floor(delay_ms * (0.5 + math.random()))
  end
end

function request()
  local k = next_index
  if k > count then
    k = 1
    wraps = wraps + 1
  end
  next_index = k + 1
  local id = ids[k]
  local body = parts[1] .. id .. parts[2] .. id .. parts[3]
  local headers = {
    ["Content-Type"] = "application/json",
    ["TT-Hook-Event"] = "clocking",
    ["TT-Hook-Signature"] = "sha1=" .. sigs[k],
  }
  for name, value in pairs(extra) do headers[name] = value end
  return wrk.format("POST", req_path, headers, body)
end

function done(summary, latency, requests)
  local w = 0
  for _, t in ipairs(threads) do
    w = w + (tonumber(t:get("wraps")) or 0)
  end
  io.write(string.format("WRAPS %d\n", w))
end

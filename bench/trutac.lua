-- wrk script: POSTs the pre-generated signed TruTac events of
-- $BENCH_REQUESTS (see gen_requests.py), each thread taking every
-- nthreads-th one so every request carries a distinct event id. When a
-- thread runs out it starts over and counts a wrap: the run then sent
-- copies, which a deduplicating gateway answers without forwarding, so
-- run.sh refuses to report such a run.

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
  return wrk.format("POST", req_path, {
    ["Content-Type"] = "application/json",
    ["TT-Hook-Event"] = "clocking",
    ["TT-Hook-Signature"] = "sha1=" .. sigs[k],
  }, body)
end

function done(summary, latency, requests)
  local w = 0
  for _, t in ipairs(threads) do
    w = w + (tonumber(t:get("wraps")) or 0)
  end
  io.write(string.format("WRAPS %d\n", w))
end

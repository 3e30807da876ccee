-- wrk script for bench/run.py: POST one signed GitHub webhook, a unique delivery id per request.
--
--   wrk -t T -c C -d 30s -s bench/wrk/post.lua http://127.0.0.1:PORT/hooks/github -- \
--       BODY_FILE SIGNATURE RUN_PREFIX [RATE] [THREADS] [EVENT]
--
-- BODY_FILE   the raw JSON body (bench/payload.py writes it); sent byte for byte
-- SIGNATURE   its X-Hub-Signature-256 value ("sha256=<hex>")
-- RUN_PREFIX  8-4 hex chars unique to this run; delivery ids are PREFIX-TTTT-CCCCCCCCCCCC
--             (thread number, per-thread counter): a UUID's shape, unique per request
-- RATE        0 (default) = closed loop, as fast as the connections go; N = pace the whole
--             run at N requests/s: each thread hands out send slots every THREADS/N s and
--             delay() holds a connection until its slot (wrk's delay has 1 ms resolution)
-- THREADS     the -t value, so RATE can be split per thread (default 1)
-- EVENT       X-GitHub-Event (default "issues")
--
-- done() prints one line "BENCH_JSON {...}" with requests, duration, req/s, latency
-- percentiles (microseconds) and wrk's error counts (status = responses >= 400).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

-- setup() runs in the main thread once per wrk thread, before that thread's init()
local next_thread = 0
function setup(thread)
  thread:set("tid", next_thread)
  next_thread = next_thread + 1
end

local PLACEHOLDER = "@@DELIVERY@@"
local head, tail -- the formatted request split around the delivery id
local prefix
local counter = 0
local interval_ms = 0 -- 0: no pacing
local next_slot = nil

function init(args)
  local path, sig = args[1], args[2]
  prefix = args[3] or "00000000-0000"
  local rate = tonumber(args[4] or "0") or 0
  local threads = tonumber(args[5] or "1") or 1
  local event = args[6] or "issues"
  assert(path and sig, "usage: -- BODY_FILE SIGNATURE RUN_PREFIX [RATE] [THREADS] [EVENT]")

  local f = assert(io.open(path, "rb"))
  local body = f:read("*a")
  f:close()

  local request = wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "GitHub-Hookshot/bench",
    ["X-GitHub-Event"] = event,
    ["X-GitHub-Hook-ID"] = "471234567",
    ["X-Hub-Signature-256"] = sig,
    ["X-GitHub-Delivery"] = PLACEHOLDER,
  }, body)
  local at = assert(request:find(PLACEHOLDER, 1, true))
  head = request:sub(1, at - 1)
  tail = request:sub(at + #PLACEHOLDER)
  prefix = string.format("%s-%04x-", prefix, tid or 0)

  if rate > 0 then
    interval_ms = threads * 1000.0 / rate
    delay = paced_delay -- wrk looks for delay() after init(), and uses it only if defined
  end
end

function request()
  counter = counter + 1
  return head .. prefix .. string.format("%012x", counter) .. tail
end

-- becomes delay() when pacing: the wait in ms until this thread's next send slot
function paced_delay()
  local now = now_ms()
  if next_slot == nil or next_slot < now then
    next_slot = now
  end
  local wait = next_slot - now
  next_slot = next_slot + interval_ms
  return math.floor(wait + 0.5)
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  local out = {
    requests = summary.requests,
    duration_s = seconds,
    rps = summary.requests / seconds,
    bytes = summary.bytes,
    latency_us = {
      min = latency.min,
      mean = latency.mean,
      max = latency.max,
      stdev = latency.stdev,
      p50 = latency:percentile(50),
      p90 = latency:percentile(90),
      p99 = latency:percentile(99),
      p999 = latency:percentile(99.9),
    },
    errors = {
      connect = e.connect,
      read = e.read,
      write = e.write,
      status = e.status,
      timeout = e.timeout,
    },
  }
  local function enc(v)
    if type(v) == "table" then
      local kv = {}
      for k, x in pairs(v) do
        kv[#kv + 1] = string.format("%q:%s", k, enc(x))
      end
      return "{" .. table.concat(kv, ",") .. "}"
    end
    return string.format("%.17g", v)
  end
  io.write("BENCH_JSON " .. enc(out) .. "\n")
end

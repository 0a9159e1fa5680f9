-- Shared by every bench script: numbers each thread (setup) and prints one machine-readable
-- summary line (done) that bench/lib/wrk.ts prefers over wrk's rounded text output.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

-- Status codes that scripts counting responses (count_status) report in done().
local CODES = { 200, 400, 401, 403, 404, 413, 429, 500, 502, 503, 504 }

-- Call from a response() hook to count responses by status (costly: only for slow scenarios).
local status_counts = {}
function count_status(status)
  status_counts[status] = (status_counts[status] or 0) + 1
  wrk.thread:set("st" .. status, status_counts[status])
end

function done(summary, latency, requests)
  local exhausted = 0
  local statuses = {}
  for _, t in ipairs(threads) do
    exhausted = exhausted + (tonumber(t:get("exhausted")) or 0)
    for _, code in ipairs(CODES) do
      local n = tonumber(t:get("st" .. code))
      if n then statuses[code] = (statuses[code] or 0) + n end
    end
  end
  local parts = {}
  for _, code in ipairs(CODES) do
    if statuses[code] then table.insert(parts, string.format('"%d":%d', code, statuses[code])) end
  end
  io.write('BENCH_STATUS {' .. table.concat(parts, ",") .. '}\n')
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"p50_us":%d,"p75_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"exhausted":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), exhausted))
end


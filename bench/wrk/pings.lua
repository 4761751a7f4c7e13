-- Ping load for the heartbeat-operator receiver (bench/bench_pings.py, issue 8).
--
-- Spreads success pings round-robin over many monitors' tokens, each wrk thread starting
-- at its own offset, so every monitor gets about the same share and no single monitor's
-- write budget (5/s, DESIGN 9.8) limits the run. Environment:
--   BENCH_TOKENS      file with one token per line (mode 0600; never printed)
--   BENCH_METHOD      GET (default) or POST
--   BENCH_BODY_BYTES  POST body size in bytes (default 1024); ignored for GET
--   BENCH_BODY_KIND   lines (default: log lines, which deflate ~13x) or noise (random
--                     base64 characters, which the journal stores as they came)
--   BENCH_ORDER       round-robin (default, as Healthchecks' runner sends them: every
--                     monitor pinged in lockstep) or random (each token drawn at random,
--                     like a fleet whose jobs do not ping in step)
-- done() prints one line "BENCH_JSON {...}": requests, 200s, other statuses, socket
-- errors and the latency percentiles in microseconds.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  if #tokens == 0 then error("BENCH_TOKENS holds no tokens") end
  method = os.getenv("BENCH_METHOD") or "GET"
  headers = {}
  body = nil
  if method == "POST" then
    local size = tonumber(os.getenv("BENCH_BODY_BYTES") or "1024")
    if os.getenv("BENCH_BODY_KIND") ~= "noise" then
      -- Log-like text: lines of 64 bytes, the kind of output a job sends.
      local line = "2026-11-25T04:00:00Z backup: copied 1234 files, 56 MiB, ok ....\n"
      body = string.sub(string.rep(line, math.ceil(size / #line)), 1, size)
    else
      local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
      local chars = {}
      math.randomseed(7 + id)
      for i = 1, size do
        local k = math.random(1, #alphabet)
        chars[i] = string.sub(alphabet, k, k)
      end
      body = table.concat(chars)
    end
    headers["Content-Type"] = "text/plain; charset=utf-8"
  end
  counter = (id * 7919) % #tokens -- each thread starts elsewhere in the list
  random_order = os.getenv("BENCH_ORDER") == "random"
  math.randomseed(11 + id) -- the same draws in every run
  ok = 0
  other = 0
  codes = {}
end

function request()
  local token
  if random_order then
    token = tokens[math.random(1, #tokens)]
  else
    counter = counter + 1
    token = tokens[(counter % #tokens) + 1]
  end
  return wrk.format(method, "/ping/" .. token, headers, body)
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  else
    other = other + 1
    codes[status] = (codes[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local ok_total, other_total = 0, 0
  local code_text = {}
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
    other_total = other_total + thread:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"ok":%d,"other":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, ok_total, other_total,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end

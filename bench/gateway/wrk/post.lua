-- wrk script: POST a small non-streaming chat completion; count non-2xx replies.
--
--   BENCH_MODEL=chat BENCH_KEY=sk-bench wrk -t1 -c64 -d10s --timeout 10s \
--       -s bench/gateway/wrk/post.lua http://127.0.0.1:18101/v1/chat/completions
--
-- wrk counts only status >= 400 as "Non-2xx or 3xx"; here every status outside
-- 200..299 is counted, so a target that answers errors fast cannot "win".
-- done() prints one line "BENCH_JSON {...}" that bench/gateway/run.py parses.

local model = os.getenv("BENCH_MODEL") or "chat"
local key = os.getenv("BENCH_KEY") or "sk-bench"
local max_tokens = tonumber(os.getenv("BENCH_MAX_TOKENS") or "16")

wrk.method = "POST"
wrk.body = string.format(
  '{"model":"%s","messages":[{"role":"user","content":"Say hello to the benchmark."}],' ..
  '"max_tokens":%d,"stream":false}', model, max_tokens)
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"non2xx":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,' ..
    '"timeouts":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, bad,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end

-- wrk script for bench/ingest.py: POSTs Segment track calls, each with a unique messageId.
-- Arguments (after `--`): mode (track|batch), run id, users, events per batch, Authorization header value.
-- `done` prints one line "WRK_RESULT {json}" that bench/ingest.py parses.
-- The JSON of one event must stay identical to segment_event() in bench/ingest.py.

local threads = {}
local headers = {}
local counter = 0
local mode, run_id, users, batch_size

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_no", #threads) -- a global in that thread's Lua state
end

function init(args)
   mode = args[1]
   run_id = args[2]
   users = tonumber(args[3])
   batch_size = tonumber(args[4])
   headers["Content-Type"] = "application/json"
   headers["Authorization"] = args[5]
end

local function event()
   counter = counter + 1
   local user = counter % users
   return string.format(
      '{"type":"track","userId":"user-%d","anonymousId":"anon-%d","event":"Page Viewed",'
         .. '"messageId":"%s-%d-%d","properties":{"path":"/docs/%d","value":%d},'
         .. '"context":{"library":{"name":"wrk","version":"4.1"},"ip":"127.0.0.1"},'
         .. '"timestamp":"2026-01-01T00:00:00Z"}',
      user, user, run_id, thread_no, counter, counter % 50, counter % 100
   )
end

function request()
   if mode == "batch" then
      local items = {}
      for i = 1, batch_size do
         items[i] = event()
      end
      local body = '{"batch":[' .. table.concat(items, ",") .. '],"sentAt":"2026-01-01T00:00:00Z"}'
      return wrk.format("POST", "/v1/batch", headers, body)
   end
   return wrk.format("POST", "/v1/track", headers, event())
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_RESULT {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,"connect_errors":%.0f,"read_errors":%.0f,'
         .. '"write_errors":%.0f,"status_errors":%.0f,"timeouts":%.0f,'
         .. '"latency_us":{"mean":%.1f,"p50":%.0f,"p90":%.0f,"p99":%.0f,"max":%.0f}}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max
   ))
end

-- wrk script for bench/run.sh: generates the keys and requests of one run and
-- writes a JSON summary at the end.  Everything is chosen by environment
-- variables, so one file serves every target and workload:
--
--   BENCH_TARGET  kv      GET/PUT /kv/<key>                 (kvserver)
--                 nginx   GET /kv/<key>                     (fixed body, any key)
--                 webdis  GET /GET/<key>, PUT /SET/<key>    (body = value)
--   BENCH_MODE    get       GET only
--                 put_new   PUT of keys never written before (<prefix><tag>-<n>)
--                 put_over  PUT over existing keys
--                 mixed     BENCH_PUT_PCT % PUT, the rest GET
--   BENCH_DIST    uniform | zipf (BENCH_ZIPF_S, default 0.99; rank r is key
--                 (r-1)*BENCH_ZIPF_STEP mod n + 1, step 7919 or the next odd
--                 number coprime to n)
--   BENCH_PREFIX  key prefix; keys are <prefix>1 .. <prefix><BENCH_NKEYS>
--   BENCH_NKEYS   size of the key set
--   BENCH_VALUE   the value PUT (16 bytes by default)
--   BENCH_TAG     makes put_new keys unique across runs
--   BENCH_RESULT  file the JSON summary is written to
--   BENCH_BASIC   "role:password": every request carries
--                 Authorization: Basic base64(role:password)
--   BENCH_TOKEN   a kv_token_create() token: every request carries
--                 Authorization: Bearer <token> (BENCH_BASIC wins if both)
--                 Neither: no Authorization header (kvserver.anonymous_role).
--                 The header is built once per thread, not per request.
--
-- Every target pays for the same Lua work per request (one key choice, one
-- wrk.format), so the client's share of the two CPUs is the same for all.

local target  = os.getenv("BENCH_TARGET") or "kv"
local mode    = os.getenv("BENCH_MODE") or "get"
local dist    = os.getenv("BENCH_DIST") or "uniform"
local prefix  = os.getenv("BENCH_PREFIX") or "k"
local nkeys   = tonumber(os.getenv("BENCH_NKEYS") or "1000")
local zipf_s  = tonumber(os.getenv("BENCH_ZIPF_S") or "0.99")
local put_pct = tonumber(os.getenv("BENCH_PUT_PCT") or "10")
local value   = os.getenv("BENCH_VALUE") or "0123456789abcdef"
local tag     = os.getenv("BENCH_TAG") or tostring(os.time())
local result  = os.getenv("BENCH_RESULT")
local basic   = os.getenv("BENCH_BASIC")
local token   = os.getenv("BENCH_TOKEN")

-- RFC 4648 base64 with padding (LuaJIT has no library for it).
local function base64(s)
   local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
   local out = {}
   for i = 1, #s, 3 do
      local a, b, c = s:byte(i, i + 2)
      local n = a * 65536 + (b or 0) * 256 + (c or 0)
      local k = #out
      for j = 1, 4 do
         local d = math.floor(n / 64 ^ (4 - j)) % 64
         out[k + j] = alphabet:sub(d + 1, d + 1)
      end
      if not c then out[k + 4] = "=" end
      if not b then out[k + 3] = "=" end
   end
   return table.concat(out)
end

local authorization
if basic and basic ~= "" then
   authorization = "Basic " .. base64(basic)
elseif token and token ~= "" then
   authorization = "Bearer " .. token
end

-- setup() runs in the main Lua state; thread:set() makes bench_thread_no a
-- global in each thread's own state.
local setup_count = 0
function setup(thread)
   setup_count = setup_count + 1
   thread:set("bench_thread_no", setup_count)
end

-- Zipf: rank r has weight 1/r^s; the cumulative table is built once per
-- thread and searched by bisection.  Rank r is mapped to key index
-- (r-1)*step mod n + 1 with step coprime to n, so the hot keys are spread
-- over the key space (and the cache's partitions) instead of being 1, 2, 3...
local cdf
local step = 1

local function gcd(a, b)
   while b ~= 0 do a, b = b, a % b end
   return a
end

local function build_zipf()
   cdf = {}
   local sum = 0
   for r = 1, nkeys do
      sum = sum + 1 / (r ^ zipf_s)
      cdf[r] = sum
   end
   for r = 1, nkeys do cdf[r] = cdf[r] / sum end
   step = tonumber(os.getenv("BENCH_ZIPF_STEP") or "7919")
   while gcd(step, nkeys) ~= 1 do step = step + 2 end
end

local function zipf_index()
   local u = math.random()
   local lo, hi = 1, nkeys
   while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if cdf[mid] < u then lo = mid + 1 else hi = mid end
   end
   return ((lo - 1) * step) % nkeys + 1
end

local function pick_key()
   if dist == "zipf" then
      return prefix .. zipf_index()
   end
   return prefix .. math.random(1, nkeys)
end

local counter = 0
local function new_key()
   counter = counter + 1
   return prefix .. tag .. "t" .. (bench_thread_no or 0) .. "-" .. counter
end

local headers_put = { ["Content-Type"] = "application/octet-stream" }
-- wrk.format() falls back to wrk.headers when given none (the GETs)
if authorization then
   wrk.headers["Authorization"] = authorization
   headers_put["Authorization"] = authorization
end

local function get(key)
   if target == "webdis" then
      return wrk.format("GET", "/GET/" .. key)
   end
   return wrk.format("GET", "/kv/" .. key)
end

local function put(key)
   if target == "webdis" then
      return wrk.format("PUT", "/SET/" .. key, headers_put, value)
   end
   return wrk.format("PUT", "/kv/" .. key, headers_put, value)
end

function init(args)
   math.randomseed(os.time() * 1000 + (bench_thread_no or 0) * 7 + #tag)
   if dist == "zipf" then build_zipf() end
end

function request()
   if mode == "get" then
      return get(pick_key())
   elseif mode == "put_new" then
      return put(new_key())
   elseif mode == "put_over" then
      return put(pick_key())
   else -- mixed
      if math.random(1, 100) <= put_pct then
         return put(pick_key())
      end
      return get(pick_key())
   end
end

function done(summary, latency, requests)
   if not result then return end
   local e = summary.errors
   local f = assert(io.open(result, "w"))
   f:write(string.format(
      '{"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"err_connect": %d, "err_read": %d, "err_write": %d, ' ..
      '"err_status": %d, "err_timeout": %d, ' ..
      '"lat_mean_us": %.1f, "lat_p50_us": %d, "lat_p90_us": %d, ' ..
      '"lat_p99_us": %d, "lat_max_us": %d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max))
   f:close()
end

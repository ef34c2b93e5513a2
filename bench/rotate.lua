-- wrk script: GET <path> with the session cookie rotated over the lines of <file>.
-- Usage: wrk ... -s bench/rotate.lua URL -- /auth/ cookies.txt
-- Every wrk thread has its own Lua state; each starts at a random line so threads do not
-- walk the sessions in lockstep.
local cookies = {}
local path = "/"
local i = 0

function init(args)
  path = args[1] or "/"
  for line in io.lines(args[2]) do
    if #line > 0 then cookies[#cookies + 1] = line end
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
  i = math.random(#cookies)
end

function request()
  i = i % #cookies + 1
  return wrk.format("GET", path, { ["Cookie"] = "__Host-portcullis=" .. cookies[i] })
end

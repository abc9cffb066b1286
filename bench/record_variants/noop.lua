-- A floor for `bench record --script`: the record call's arguments in and its reply out,
-- no command run. Not a correct record script.
local out, n, b = {}, 0, 3
for i = 1, #KEYS, 2 do
  out[n + 1] = '200'; out[n + 2] = ARGV[b + 3]; out[n + 3] = ARGV[b + 4]
  out[n + 4] = ARGV[b + 5]; out[n + 5] = ARGV[b + 6]
  n = n + 5; b = b + 9
end
return out

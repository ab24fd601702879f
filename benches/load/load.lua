-- wrk script: a varied x-user-id on every request, the forced header on 5% of them.
math.randomseed(42)

request = function()
  local headers = { ["x-user-id"] = tostring(math.random(1, 1000000)) }
  if math.random() < 0.05 then
    headers["x-gray-version"] = "v2"
  end
  return wrk.format("GET", "/api/hello", headers)
end

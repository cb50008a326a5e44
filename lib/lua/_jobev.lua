-- job_event(data, extra, max): a job's event data with who started it. `extra` is the
-- job's `event_extra` field, JSON members without braces written by the API at creation
-- ("user":{…},"stdin_given":…), put at the front of the object `data`; nil or "" leaves
-- data as it is (jobs created before the field existed). When the result would pass max
-- (the events' bound) with them, the result is left out, as the worker does for a result
-- too large on its own: GET /api/jobs/{id} has it.
local function job_event(data, extra, max)
  if not extra or extra == '' or string.sub(data, 1, 1) ~= '{' then return data end
  local function join(d)
    if d == '{}' then return '{' .. extra .. '}' end
    return '{' .. extra .. ',' .. string.sub(d, 2)
  end
  local out = join(data)
  if not max or #out <= max then return out end
  local d = cjson.decode(data)
  d.result = nil
  out = join(cjson.encode(d))
  if #out <= max then return out end
  return data
end

-- The router's run-time routing beyond weights, in HAProxy's Lua extension API (HAProxy 2.6,
-- Debian 12, has no mirror directive). Loaded by the router's config
-- (traffic_forecast/deploy/router.py), set through the admin socket, so that switching any of it
-- needs no reload and clients' connections stay open:
--
--   shadow 127.0.0.1:3002        a copy of every request to that colour, its answer dropped
--                                (a deploy's shadow step; an experiment's shadow mode)
--   shadow off
--   experiment <id> <champion colour> <challenger colour> <shadow|split> <basis points> <header>
--                                an A/B experiment (traffic_forecast/experiment): every request
--                                is tagged with the experiment and its arm; in split mode the
--                                challenger answers the clients whose key (<header>) hashes below
--                                <basis points> of 10,000
--   experiment off
--
-- What was last set is also read from the file named by TRAFFIC_FORECAST_ROUTING at load, so a
-- reload or restart of the router routes as before, the same clients on the same arms.

local target = nil      -- "host:port" of the colour that receives the copies, or nil
local experiment = nil  -- {id, champion, challenger, mode, basis, header}, or nil

local ID_HEADER, ARM_HEADER = "x-experiment-id", "x-experiment-arm"

-- FNV-1a over the bytes, then MurmurHash3's finaliser: every bit of the key moves the bucket.
-- Mirrored in Python (traffic_forecast/experiment/assignment.py); a test holds them equal.
local function bucket(key)
    local h = 2166136261
    for i = 1, #key do
        h = ((h ~ key:byte(i)) * 16777619) & 0xffffffff
    end
    h = h ~ (h >> 16)
    h = (h * 0x85ebca6b) & 0xffffffff
    h = h ~ (h >> 13)
    h = (h * 0xc2b2ae35) & 0xffffffff
    h = h ~ (h >> 16)
    return h % 10000
end

local function set(words)
    local name = words[1]
    if name == "shadow" then
        local value = words[2]
        if value == nil or value == "off" then target = nil else target = value end
        return "shadow: " .. (target or "off")
    elseif name == "experiment" then
        if words[2] == nil or words[2] == "off" then
            experiment = nil
            return "experiment: off"
        end
        local basis = tonumber(words[6])
        if #words ~= 7 or basis == nil or (words[5] ~= "shadow" and words[5] ~= "split") then
            return "error: experiment <id> <champion> <challenger> <shadow|split> <basis> <header>"
        end
        experiment = {id = words[2], champion = words[3], challenger = words[4],
                      mode = words[5], basis = math.tointeger(basis), header = words[7]}
        return "experiment: " .. experiment.id .. " " .. experiment.mode
    end
    return "error: unknown setting " .. tostring(name)
end

local function split(line)
    local words = {}
    for word in line:gmatch("%S+") do words[#words + 1] = word end
    return words
end

local saved = os.getenv("TRAFFIC_FORECAST_ROUTING")
if saved ~= nil then
    local file = io.open(saved, "r")
    if file ~= nil then
        for line in file:lines() do
            if line:match("%S") then set(split(line)) end
        end
        file:close()
    end
end

local function cli(name)
    core.register_cli({name}, name .. " … : see router.lua", function(applet, ...)
        local words = {...}
        -- HAProxy passes the command's words after the registered ones: drop those.
        local given = {name}
        for i = 2, #words do if words[i] ~= "" then given[#given + 1] = words[i] end end
        applet:send(set(given) .. "\n")
    end)
end
cli("shadow")
cli("experiment")

-- Every request: no client may choose its arm; during an experiment, its id and arm, and the
-- colour that must answer (the backend's use-server rules read txn.colour).
core.register_action("experiment", {"http-req"}, function(txn)
    txn.http:req_del_header(ID_HEADER)
    txn.http:req_del_header(ARM_HEADER)
    if experiment == nil then return end
    local arm = "champion"
    if experiment.mode == "split" then
        local key = txn.f:req_fhdr(experiment.header)  -- the whole value, commas too
        if key ~= nil and key ~= "" and bucket(experiment.id .. ":" .. key) < experiment.basis then
            arm = "challenger"
        end
    end
    txn:set_var("txn.colour", experiment[arm])
    -- The experiment as this request saw it: its answer is labelled by it, even if the
    -- experiment ends while the request is in flight.
    txn:set_var("txn.experiment", experiment.id)
    txn:set_var("txn.champion", experiment.champion)
    txn:set_var("txn.challenger", experiment.challenger)
    txn.http:req_set_header(ID_HEADER, experiment.id)
    txn.http:req_set_header(ARM_HEADER, arm)
end, 0)

-- Every answer: the arm of the colour that really answered (a challenger that is down is
-- passed over by HAProxy, and the champion's answer must not be labelled the challenger's).
core.register_action("experiment_answer", {"http-res"}, function(txn)
    local id = txn:get_var("txn.experiment")
    if id == nil then return end
    local colour = txn.f:srv_name()
    local arm = nil
    if colour == txn:get_var("txn.challenger") then arm = "challenger"
    elseif colour == txn:get_var("txn.champion") then arm = "champion" end
    if arm ~= nil then
        txn.http:res_set_header(ID_HEADER, id)
        txn.http:res_set_header(ARM_HEADER, arm)
    end
end, 0)

local SEND = {GET = "get", POST = "post", HEAD = "head"}

core.register_action("shadow", {"http-req"}, function(txn)
    local method = SEND[txn.f:method()]
    if target == nil or method == nil then return end
    local body = txn.f:req_body() or ""
    local request = {
        url = "http://" .. target .. txn.f:pathq(),
        body = body,
        timeout = 30000,
        headers = {["content-length"] = {tostring(#body)}},
    }
    local content_type = txn.f:req_hdr("content-type")
    if content_type ~= nil then request.headers["content-type"] = {content_type} end
    if experiment ~= nil then  -- the copy is the challenger's answer to the same request
        request.headers[ID_HEADER] = {experiment.id}
        request.headers[ARM_HEADER] = {"challenger"}
    end
    -- A task of its own: the live request goes on at once, the copy's answer is dropped.
    core.register_task(function()
        local client = core.httpclient()
        client[method](client, request)
    end)
end, 0)

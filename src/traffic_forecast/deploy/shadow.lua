-- The deploy's shadow step: a copy of every live request to the colour being deployed, whose
-- answers nobody waits for. HAProxy 2.6 (Debian 12) has no mirror directive: this is its Lua
-- extension API doing the copying. Loaded by the router's config (traffic_forecast/deploy/router.py).
--
-- Off until the runtime API says where to send the copies:
--   shadow 127.0.0.1:3002     (on the admin socket; `shadow off` stops)
-- so switching it on or off needs no reload, and clients' connections stay open.

local target = nil  -- "host:port" of the colour that receives the copies, or nil

core.register_cli({"shadow"}, "shadow <host:port>|off : copy live requests to a colour",
    function(applet, ...)
        local words = {...}
        local value = words[#words]
        if value == "off" or value == "shadow" then target = nil else target = value end
        applet:send("shadow: " .. (target or "off") .. "\n")
    end)

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
    -- A task of its own: the live request goes on at once, the copy's answer is dropped.
    core.register_task(function()
        local client = core.httpclient()
        client[method](client, request)
    end)
end, 0)

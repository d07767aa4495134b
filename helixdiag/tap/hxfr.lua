-- HXFR: the Helix frame-export protocol (guest vsockenc / desktop-bridge <-> QEMU
-- helix-frame-export), as docs/protocol.md of helixdiag describes it.
--
-- Shipped with helixdiag; `helixdiag tap --dissector` prints where this file is.
-- Use it for one run:   tshark -X lua_script:/path/to/hxfr.lua -r capture.pcapng -Y hxfr
-- or install it:        cp hxfr.lua ~/.local/lib/wireshark/plugins/   (Wireshark >= 2.5)
--
-- Found on TCP ports 15937 and 41937, and on any TCP connection whose first bytes are
-- "HXFR" (a heuristic). Other ports: Decode As... HXFR, or  -d tcp.port==5900,hxfr
-- Little-endian, packed; a 12-byte header, then payload_size bytes. Whole messages are
-- reassembled over TCP segments (a 1080p NV12 FRAME_REQUEST is ~3 MB). The H.264 in a
-- FRAME_RESPONSE entry is handed to Wireshark's h264 dissector one NAL unit at a time.

local hxfr = Proto("hxfr", "Helix frame export (HXFR)")

local MAGIC = 0x52465848 -- "HXFR"
local HEADER = 12
local MAX_PAYLOAD = 64 * 1024 * 1024 + 44 -- the host's pixel limit, plus the request body

local types = {
    [0x01] = "FRAME_REQUEST", [0x02] = "FRAME_RESPONSE", [0x03] = "KEYFRAME_REQ",
    [0x04] = "CONFIG_REQ", [0x05] = "CONFIG_RESP", [0x10] = "PING", [0x11] = "PONG",
    [0x20] = "ENABLE_SCANOUT", [0x21] = "DISABLE_SCANOUT", [0x22] = "SCANOUT_RESP",
    [0x30] = "SUBSCRIBE", [0x31] = "SUBSCRIBE_RESP", [0xFF] = "ERROR",
}
-- payload_size each type must announce (nil: variable)
local fixed = {
    [0x03] = 0, [0x04] = 28, [0x10] = 0, [0x11] = 0, [0x20] = 16, [0x21] = 4, [0x22] = 72,
    [0x30] = 4, [0x31] = 8, [0xFF] = 260,
}
local formats = {
    [0x34325241] = "BGRA8888 (AR24)", [0x34324241] = "RGBA8888 (AB24)", [0x3231564E] = "NV12", [0] = "UNKNOWN",
}
local error_codes = {
    [0] = "OK", [-1] = "INVALID_MSG", [-2] = "RESOURCE_NOT_FOUND", [-3] = "NOT_METAL_TEXTURE",
    [-4] = "NO_IOSURFACE", [-5] = "ENCODE_FAILED", [-6] = "NOT_CONFIGURED", [-99] = "INTERNAL",
}
local nal_types = {
    [1] = "SLICE", [2] = "DPA", [3] = "DPB", [4] = "DPC", [5] = "IDR", [6] = "SEI", [7] = "SPS", [8] = "PPS",
    [9] = "AUD", [10] = "END_SEQ", [11] = "END_STREAM", [12] = "FILLER", [13] = "SPS_EXT", [14] = "PREFIX",
    [15] = "SUBSET_SPS", [19] = "AUX_SLICE", [20] = "SLICE_EXT",
}

local f = {
    magic = ProtoField.uint32("hxfr.magic", "Magic", base.HEX),
    type = ProtoField.uint8("hxfr.type", "Message type", base.HEX, types),
    flags = ProtoField.uint8("hxfr.flags", "Flags", base.HEX),
    pixel_data = ProtoField.bool("hxfr.flags.pixel_data", "PIXEL_DATA", 8, nil, 0x01),
    session_id = ProtoField.uint16("hxfr.session_id", "Session id", base.DEC),
    payload_size = ProtoField.uint32("hxfr.payload_size", "Payload size", base.DEC),
    resource_id = ProtoField.uint32("hxfr.resource_id", "Resource id", base.DEC),
    width = ProtoField.uint32("hxfr.width", "Width", base.DEC),
    height = ProtoField.uint32("hxfr.height", "Height", base.DEC),
    format = ProtoField.uint32("hxfr.format", "Format", base.HEX, formats),
    stride = ProtoField.uint32("hxfr.stride", "Stride", base.DEC),
    pts = ProtoField.int64("hxfr.pts", "PTS (ns)", base.DEC),
    duration = ProtoField.int64("hxfr.duration", "Duration (ns)", base.DEC),
    dts = ProtoField.int64("hxfr.dts", "DTS (ns)", base.DEC),
    force_keyframe = ProtoField.uint8("hxfr.force_keyframe", "Force keyframe", base.DEC),
    reserved = ProtoField.bytes("hxfr.reserved", "Reserved"),
    pixels = ProtoField.bytes("hxfr.pixels", "Pixels"),
    pixel_bytes = ProtoField.uint32("hxfr.pixel_bytes", "Pixel bytes", base.DEC),
    is_keyframe = ProtoField.uint8("hxfr.is_keyframe", "Is keyframe", base.DEC),
    nal_count = ProtoField.uint32("hxfr.nal_count", "NAL entries", base.DEC),
    entry = ProtoField.bytes("hxfr.entry", "NAL entry"),
    entry_length = ProtoField.uint32("hxfr.entry.length", "Entry length", base.DEC),
    framing = ProtoField.string("hxfr.framing", "H.264 framing"),
    nal_type = ProtoField.uint8("hxfr.nal_type", "NAL unit type", base.DEC, nal_types, 0x1F),
    bitrate = ProtoField.uint32("hxfr.bitrate", "Bitrate (bit/s)", base.DEC),
    framerate_num = ProtoField.uint32("hxfr.framerate_num", "Frame rate numerator", base.DEC),
    framerate_den = ProtoField.uint32("hxfr.framerate_den", "Frame rate denominator", base.DEC),
    profile = ProtoField.uint8("hxfr.profile", "Profile", base.DEC),
    level = ProtoField.uint8("hxfr.level", "Level (x10)", base.DEC),
    realtime = ProtoField.uint8("hxfr.realtime", "Realtime", base.DEC),
    scanout_id = ProtoField.uint32("hxfr.scanout_id", "Scanout id", base.DEC),
    refresh_rate = ProtoField.uint32("hxfr.refresh_rate", "Refresh rate", base.DEC),
    success = ProtoField.uint32("hxfr.success", "Success", base.DEC),
    connector = ProtoField.stringz("hxfr.connector", "Connector"),
    error_code = ProtoField.int32("hxfr.error_code", "Error code", base.DEC, error_codes),
    error_message = ProtoField.stringz("hxfr.error_message", "Error message"),
    payload = ProtoField.bytes("hxfr.payload", "Payload"),
}
hxfr.fields = f

local e = {
    bad_magic = ProtoExpert.new("hxfr.bad_magic", "Not at an HXFR message: bad magic (the stream is out of step)",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_size = ProtoExpert.new("hxfr.bad_size", "payload_size is not what this message type needs",
        expert.group.MALFORMED, expert.severity.ERROR),
    unknown_type = ProtoExpert.new("hxfr.unknown_type", "Unknown message type (H3/H4 hosts skip it)",
        expert.group.PROTOCOL, expert.severity.WARN),
    bad_nal_table = ProtoExpert.new("hxfr.bad_nal_table", "NAL entries do not fill the payload exactly",
        expert.group.MALFORMED, expert.severity.ERROR),
    nal_count = ProtoExpert.new("hxfr.nal_count_not_1", "More than one NAL entry (the Go scanout reader reads only the first)",
        expert.group.PROTOCOL, expert.severity.WARN),
    avcc = ProtoExpert.new("hxfr.avcc", "AVCC (length-prefixed) H.264 instead of Annex-B: h264parse cannot use it",
        expert.group.PROTOCOL, expert.severity.ERROR),
    no_sps_pps = ProtoExpert.new("hxfr.no_sps_pps", "Keyframe without SPS/PPS before the IDR",
        expert.group.PROTOCOL, expert.severity.ERROR),
}
hxfr.experts = { e.bad_magic, e.bad_size, e.unknown_type, e.bad_nal_table, e.nal_count, e.avcc, e.no_sps_pps }

local h264 = Dissector.get("h264")

-- Annex-B: split on 00 00 01 start codes (zero bytes before one belong to no NAL unit).
local function annexb_units(raw)
    local units = {}
    local pos = string.find(raw, "\0\0\1", 1, true)
    while pos do
        local start = pos + 3
        local nxt = string.find(raw, "\0\0\1", start, true)
        local stop = nxt and nxt - 1 or #raw
        while stop >= start and string.byte(raw, stop) == 0 do stop = stop - 1 end
        if stop >= start then units[#units + 1] = { start - 1, stop - start + 1 } end
        pos = nxt
    end
    return units
end

-- AVCC: a 4-byte big-endian length before each NAL unit, which must end exactly.
local function avcc_units(tvb, offset, len)
    local units, pos, stop = {}, offset, offset + len
    while pos < stop do
        if stop - pos < 4 then return nil end
        local n = tvb(pos, 4):uint()
        if n == 0 or pos + 4 + n > stop then return nil end
        units[#units + 1] = { pos + 4 - offset, n }
        pos = pos + 4 + n
    end
    return units
end

local function dissect_entry(tvb, offset, len, tree, pinfo, state)
    local units
    local raw = tvb:raw(offset, math.min(len, 4))
    if len >= 4 and (raw == "\0\0\0\1" or string.sub(raw, 1, 3) == "\0\0\1") then
        tree:add(f.framing, "Annex-B")
        units = annexb_units(tvb:raw(offset, len))
    else
        units = avcc_units(tvb, offset, len)
        if units then
            tree:add(f.framing, "AVCC"):add_proto_expert_info(e.avcc)
            state.avcc = true
        else
            tree:add(f.framing, "unknown")
            return
        end
    end
    for _, u in ipairs(units) do
        local nal_tvb = tvb(offset + u[1], u[2])
        local t = nal_tvb(0, 1):uint() % 32  -- nal_unit_type: the low 5 bits
        tree:add(f.nal_type, nal_tvb(0, 1))
        state.types[#state.types + 1] = nal_types[t] or tostring(t)
        if t == 7 then state.sps = true end
        if t == 8 then state.pps = true end
        if t == 5 and not state.idr then
            state.idr = true
            state.params_before_idr = state.sps and state.pps
        end
        if h264 then pcall(function() h264:call(nal_tvb:tvb(), pinfo, tree) end) end
    end
end

local function add_header(tvb, tree)
    tree:add_le(f.magic, tvb(0, 4))
    tree:add_le(f.type, tvb(4, 1))
    local flags = tree:add_le(f.flags, tvb(5, 1))
    flags:add_le(f.pixel_data, tvb(5, 1))
    tree:add_le(f.session_id, tvb(6, 2))
    tree:add_le(f.payload_size, tvb(8, 4))
end

-- One whole message in tvb (header + payload); returns a short summary for the Info column.
local function dissect_message(tvb, pinfo, root)
    local mtype = tvb(4, 1):uint()
    local name = types[mtype] or string.format("type 0x%02x", mtype)
    local psize = tvb(8, 4):le_uint()
    local tree = root:add(hxfr, tvb(), "HXFR " .. name)
    add_header(tvb, tree)
    if not types[mtype] then
        tree:add_proto_expert_info(e.unknown_type)
        if psize > 0 then tree:add(f.payload, tvb(HEADER, psize)) end
        return name
    end
    if fixed[mtype] and fixed[mtype] ~= psize then
        tree:add_proto_expert_info(e.bad_size)
        if psize > 0 then tree:add(f.payload, tvb(HEADER, psize)) end
        return name .. " (bad size)"
    end
    local p = HEADER
    local info = name
    if mtype == 0x01 then
        if psize < 44 then tree:add_proto_expert_info(e.bad_size); return name .. " (bad size)" end
        tree:add_le(f.resource_id, tvb(p, 4)); tree:add_le(f.width, tvb(p + 4, 4))
        tree:add_le(f.height, tvb(p + 8, 4)); tree:add_le(f.format, tvb(p + 12, 4))
        tree:add_le(f.stride, tvb(p + 16, 4)); tree:add_le(f.pts, tvb(p + 20, 8))
        tree:add_le(f.duration, tvb(p + 28, 8)); tree:add_le(f.force_keyframe, tvb(p + 36, 1))
        tree:add(f.reserved, tvb(p + 37, 7))
        local w, h = tvb(p + 4, 4):le_uint(), tvb(p + 8, 4):le_uint()
        local fmt = formats[tvb(p + 12, 4):le_uint()] or "?"
        info = string.format("%s %dx%d %s", name, w, h, fmt)
        if psize > 44 then
            tree:add(f.pixels, tvb(p + 44, psize - 44))
            tree:add(f.pixel_bytes, tvb(p + 44, psize - 44), psize - 44)
        end
        if tvb(p + 36, 1):uint() ~= 0 then info = info .. " key" end
    elseif mtype == 0x02 then
        if psize < 24 then tree:add_proto_expert_info(e.bad_size); return name .. " (bad size)" end
        tree:add_le(f.pts, tvb(p, 8)); tree:add_le(f.dts, tvb(p + 8, 8))
        tree:add_le(f.is_keyframe, tvb(p + 16, 1)); tree:add(f.reserved, tvb(p + 17, 3))
        tree:add_le(f.nal_count, tvb(p + 20, 4))
        local count = tvb(p + 20, 4):le_uint()
        if count ~= 1 then tree:add_proto_expert_info(e.nal_count) end
        local pos, stop = p + 24, HEADER + psize
        local state = { types = {}, sps = false, pps = false, idr = false, params_before_idr = false }
        for i = 1, count do
            if stop - pos < 4 then tree:add_proto_expert_info(e.bad_nal_table); break end
            local n = tvb(pos, 4):le_uint()
            if n > stop - pos - 4 then tree:add_proto_expert_info(e.bad_nal_table); break end
            local et = tree:add(f.entry, tvb(pos, 4 + n))
            et:set_text(string.format("NAL entry %d: %d bytes", i, n))
            et:add_le(f.entry_length, tvb(pos, 4))
            if n > 0 then dissect_entry(tvb, pos + 4, n, et, pinfo, state) end
            pos = pos + 4 + n
        end
        if pos ~= stop then tree:add_proto_expert_info(e.bad_nal_table) end
        local key = state.idr or tvb(p + 16, 1):uint() ~= 0
        if key and not state.avcc and not state.params_before_idr then tree:add_proto_expert_info(e.no_sps_pps) end
        info = name .. " " .. (state.avcc and "AVCC " or "") .. table.concat(state.types, "+") .. (key and " key" or "")
    elseif mtype == 0x04 then
        tree:add_le(f.width, tvb(p, 4)); tree:add_le(f.height, tvb(p + 4, 4))
        tree:add_le(f.bitrate, tvb(p + 8, 4)); tree:add_le(f.framerate_num, tvb(p + 12, 4))
        tree:add_le(f.framerate_den, tvb(p + 16, 4)); tree:add_le(f.profile, tvb(p + 20, 1))
        tree:add_le(f.level, tvb(p + 21, 1)); tree:add_le(f.realtime, tvb(p + 22, 1))
        tree:add(f.reserved, tvb(p + 23, 5))
        info = string.format("%s %d bit/s", name, tvb(p + 8, 4):le_uint())
    elseif mtype == 0x05 then
        if psize > 0 then tree:add(f.payload, tvb(p, psize)) end
    elseif mtype == 0x20 then
        tree:add_le(f.scanout_id, tvb(p, 4)); tree:add_le(f.width, tvb(p + 4, 4))
        tree:add_le(f.height, tvb(p + 8, 4)); tree:add_le(f.refresh_rate, tvb(p + 12, 4))
        info = string.format("%s %d", name, tvb(p, 4):le_uint())
    elseif mtype == 0x21 or mtype == 0x30 then
        tree:add_le(f.scanout_id, tvb(p, 4))
        info = string.format("%s %d", name, tvb(p, 4):le_uint())
    elseif mtype == 0x22 then
        tree:add_le(f.scanout_id, tvb(p, 4)); tree:add_le(f.success, tvb(p + 4, 4))
        tree:add(f.connector, tvb(p + 8, 64))
        info = string.format("%s %d", name, tvb(p, 4):le_uint())
    elseif mtype == 0x31 then
        tree:add_le(f.scanout_id, tvb(p, 4)); tree:add_le(f.success, tvb(p + 4, 4))
        info = string.format("%s %d", name, tvb(p, 4):le_uint())
    elseif mtype == 0xFF then
        tree:add_le(f.error_code, tvb(p, 4)); tree:add(f.error_message, tvb(p + 4, 256))
        info = string.format("%s %d", name, tvb(p, 4):le_int())
    end
    return info
end

function hxfr.dissector(tvb, pinfo, root)
    local len = tvb:len()
    local offset = 0
    local infos = {}
    pinfo.cols.protocol = "HXFR"
    while offset < len do
        local left = len - offset
        if left < HEADER then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            break
        end
        if tvb(offset, 4):le_uint() ~= MAGIC then
            -- No resynchronisation marker exists: show the rest as undecodable.
            local t = root:add(hxfr, tvb(offset), "HXFR: not a message (bad magic)")
            t:add_le(f.magic, tvb(offset, 4))
            t:add_proto_expert_info(e.bad_magic)
            infos[#infos + 1] = "bad magic"
            offset = len
            break
        end
        local psize = tvb(offset + 8, 4):le_uint()
        if psize > MAX_PAYLOAD then
            local t = root:add(hxfr, tvb(offset), "HXFR: payload_size over the 64 MiB limit")
            add_header(tvb(offset, HEADER):tvb(), t)
            t:add_proto_expert_info(e.bad_size)
            infos[#infos + 1] = "payload too large"
            offset = len
            break
        end
        local total = HEADER + psize
        if left < total then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = total - left
            break
        end
        infos[#infos + 1] = dissect_message(tvb(offset, total):tvb(), pinfo, root)
        offset = offset + total
    end
    pinfo.cols.protocol = "HXFR"  -- again: the h264 dissector renames the column
    if #infos > 0 then pinfo.cols.info = table.concat(infos, ", ") end
    return len
end

local function heuristic(tvb, pinfo, root)
    if tvb:len() < 4 or tvb(0, 4):le_uint() ~= MAGIC then return false end
    pinfo.conversation = hxfr
    hxfr.dissector(tvb, pinfo, root)
    return true
end

hxfr:register_heuristic("tcp", heuristic)
local tcp_port = DissectorTable.get("tcp.port")
tcp_port:add(15937, hxfr)
tcp_port:add(41937, hxfr)

-- The HTML, CSS and JavaScript of the activation atlas (lumen.introspect.atlas
-- fills in the data). Plain DOM and canvas, no libraries, no network.
local M = {}

-- The style sheet and the script are files in atlas/ beside this one
-- (lua/lumen/introspect/atlas/atlas.css and atlas.js), embedded into the
-- binary at build time as modules returning their text.
local STYLE = require 'lumen.introspect.atlas.atlas_css'
local SCRIPT = require 'lumen.introspect.atlas.atlas_js'

local BODY = [[
<header><h1 id="title"></h1><span id="status">loading...</span></header>
<div id="main">
  <div id="view"><canvas id="map"></canvas>
    <div id="tooltip" hidden><canvas id="tip-image"></canvas><div id="tip-text"></div></div>
  </div>
  <aside>
    <h2>View</h2>
    <div><label>colour by <select id="color-mode"></select></label> <button id="reset">reset view</button></div>
    <div id="set-toggles"></div>
    <div class="muted">Drag to pan, scroll to zoom, hover a point for its input, click it for its activations.</div>
    <h2>Legend</h2><div id="legend"></div>
    <div id="overlay-box" hidden><h2>Overlays</h2><div id="overlays"></div></div>
    <h2>Selected point</h2>
    <div style="display:flex;gap:10px"><canvas id="sel-image" style="display:none"></canvas><div id="sel-info"></div></div>
    <canvas id="network" style="display:none"></canvas><div id="net-note" class="muted"></div>
  </aside>
</div>
]]

local function escape_html(s)
  return (s:gsub("[&<>\"]", {["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;"}))
end
M.escape_html = escape_html -- (the study's report page too)

--- The whole page for a title and the atlas data as JSON text in pieces
--- (lumen.json's encode_parts), as a list of pieces for lm.write_file.
function M.render(title, data_parts)
  local t = escape_html(title)
  local out = {"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>", t,
    "</title>\n<meta name=\"viewport\" content=\"width=device-width\">\n<style>", STYLE, "</style></head>\n<body>",
    (BODY:gsub('<h1 id="title"></h1>', function() return '<h1 id="title">' .. t .. "</h1>" end)),
    "<script id=\"atlas-data\" type=\"application/json\">"}
  -- No "<" reaches the script element: "</script" would end it and "<!--"
  -- would change how the HTML parser reads what follows (a class named
  -- "<!--<script>" kept the page from loading). "<" only occurs inside JSON
  -- strings, where "\u003c" is the same text, and each piece holds whole
  -- tokens, so no escape is split.
  for _, piece in ipairs(data_parts) do
    out[#out + 1] = piece:find("<", 1, true) and piece:gsub("<", "\\u003c") or piece
  end
  out[#out + 1] = "</script>\n<script>"
  out[#out + 1] = SCRIPT
  out[#out + 1] = "</script>\n</body></html>\n"
  return out
end

return M

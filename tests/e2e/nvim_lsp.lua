-- Headless Neovim (0.7.2 from Debian; >= 0.8 works too) drives `mljob lsp` on a real job file and writes what it
-- saw as JSON for tests/e2e/test_neovim.py to judge. Every step is recorded even when an earlier one fails, so the
-- test can say exactly which step went wrong.
--   nvim --headless -u NONE -i NONE -n -c "luafile nvim_lsp.lua"
-- Environment: MLJOB_E2E_FILE (job file), MLJOB_E2E_SERVER (JSON list: the server command), MLJOB_E2E_OUT (results),
-- MLJOB_E2E_COMPLETE_LINE (0-based line to complete on), MLJOB_E2E_DEFINITION ("line,character"),
-- MLJOB_E2E_FIX_CODE (code whose quick fix to apply).
local file = assert(os.getenv("MLJOB_E2E_FILE"))
local server = vim.fn.json_decode(assert(os.getenv("MLJOB_E2E_SERVER")))
local out = assert(os.getenv("MLJOB_E2E_OUT"))
local complete_line = tonumber(os.getenv("MLJOB_E2E_COMPLETE_LINE") or "0")
local def_line, def_char = (os.getenv("MLJOB_E2E_DEFINITION") or "0,0"):match("(%d+),(%d+)")
local fix_code = os.getenv("MLJOB_E2E_FIX_CODE") or "MLJ101"
local results = { version = tostring(vim.version().major) .. "." .. tostring(vim.version().minor) .. "."
  .. tostring(vim.version().patch) }

local function finish()
  local handle = assert(io.open(out, "w"))
  handle:write(vim.fn.json_encode(results))
  handle:close()
  vim.cmd("qall!")
end

local function diagnostics(buf)
  local found = {}
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    local code = d.code or (d.user_data and d.user_data.lsp and d.user_data.lsp.code)
    table.insert(found, { line = d.lnum, col = d.col, code = code, source = d.source, message = d.message,
      severity = d.severity })
  end
  return found
end

local ok, err = pcall(function()
  vim.cmd("edit " .. vim.fn.fnameescape(file))
  local buf = vim.api.nvim_get_current_buf()
  vim.bo[buf].filetype = "yaml"
  local cfg = { name = "mljob", cmd = server, root_dir = vim.fn.fnamemodify(file, ":h") }
  local client_id
  if vim.lsp.start then
    client_id = vim.lsp.start(cfg, { bufnr = buf })
  else
    client_id = vim.lsp.start_client(cfg)
    vim.lsp.buf_attach_client(buf, client_id)
  end
  results.started = client_id ~= nil
  if not client_id then return end

  -- 1. Diagnostics published on open.
  vim.wait(30000, function() return #vim.diagnostic.get(buf) > 0 end, 50)
  results.diagnostics = diagnostics(buf)

  -- 2. Completion on an empty line.
  local params = { textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = { line = complete_line, character = 0 } }
  local answer = vim.lsp.buf_request_sync(buf, "textDocument/completion", params, 10000) or {}
  results.completion = {}
  for _, r in pairs(answer) do
    local items = r.result and (r.result.items or r.result) or {}
    for _, item in ipairs(items) do table.insert(results.completion, item.label) end
  end

  -- 3. Go to definition from an expression.
  params.position = { line = tonumber(def_line), character = tonumber(def_char) }
  answer = vim.lsp.buf_request_sync(buf, "textDocument/definition", params, 10000) or {}
  results.definition = {}
  for _, r in pairs(answer) do
    for _, loc in ipairs(r.result or {}) do
      table.insert(results.definition, { uri = loc.uri, line = loc.range.start.line })
    end
  end

  -- 4. Code lens on the job's first line.
  answer = vim.lsp.buf_request_sync(buf, "textDocument/codeLens",
    { textDocument = { uri = vim.uri_from_bufnr(buf) } }, 10000) or {}
  results.lenses = {}
  for _, r in pairs(answer) do
    for _, lens in ipairs(r.result or {}) do
      table.insert(results.lenses, { line = lens.range.start.line, title = lens.command and lens.command.title,
        command = lens.command and lens.command.command, arguments = lens.command and lens.command.arguments })
    end
  end

  -- 5. The quick fix for one diagnostic, applied the way `vim.lsp.buf.code_action()` would, then re-judged.
  local target
  for _, d in ipairs(results.diagnostics) do
    if d.code == fix_code then target = d end
  end
  if target then
    local line_diagnostics = vim.lsp.diagnostic.get_line_diagnostics(buf, target.line)
    local ctx_params = { textDocument = { uri = vim.uri_from_bufnr(buf) },
      range = { start = { line = target.line, character = 0 }, ["end"] = { line = target.line, character = 0 } },
      context = { diagnostics = line_diagnostics } }
    answer = vim.lsp.buf_request_sync(buf, "textDocument/codeAction", ctx_params, 10000) or {}
    results.actions = {}
    local chosen
    for _, r in pairs(answer) do
      for _, action in ipairs(r.result or {}) do
        table.insert(results.actions, { title = action.title, kind = action.kind, preferred = action.isPreferred })
        if action.kind == "quickfix" and action.isPreferred and not chosen then chosen = action end
      end
    end
    if chosen and chosen.edit then
      vim.lsp.util.apply_workspace_edit(chosen.edit, "utf-16")
      results.applied = chosen.title
      vim.wait(20000, function()
        for _, d in ipairs(diagnostics(buf)) do
          if d.code == fix_code then return false end
        end
        return true
      end, 50)
      results.after_fix = diagnostics(buf)
      results.fixed_line = vim.api.nvim_buf_get_lines(buf, target.line, target.line + 1, false)[1]
    end
  end

  -- 6. The lens's command: validate, answered with a one-line summary.
  local client = vim.lsp.get_client_by_id(client_id)
  local validate_lens = nil
  for _, candidate in ipairs(results.lenses) do
    if candidate.command == "mljob.validate" then validate_lens = candidate end
  end
  if validate_lens then
    local lens = validate_lens
    local reply = client.request_sync("workspace/executeCommand",
      { command = lens.command, arguments = lens.arguments }, 10000, buf)
    results.command = reply and reply.result
  end

  vim.lsp.stop_client(client_id)
  vim.wait(5000, function() return vim.lsp.get_client_by_id(client_id) == nil end, 50)
end)
if not ok then results.error = tostring(err) end
finish()

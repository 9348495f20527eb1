// End to end in a real VS Code: code-server 4.100.3 + our .vsix + `mljob lsp`, driven by Debian's headless Chromium
// through playwright-core. Run by test_vscode_e2e.py, which prepares the workspace; see that file for the steps.
//
// Env: MLJOB_E2E_WORKSPACE (folder with the job files; required), MLJOB_E2E_CODE_SERVER, MLJOB_E2E_VSIX,
//      MLJOB_E2E_PYTHON, MLJOB_E2E_SERVER_COMMAND (JSON argv: the negative control breaks the server with it),
//      MLJOB_E2E_SHOTS (screenshot folder), MLJOB_E2E_STEPS (comma list; default: all), MLJOB_E2E_CHROMIUM,
//      MLJOB_E2E_DIAG_TIMEOUT (seconds), MLJOB_E2E_KEEP (keep code-server's temp folder).
// Prints one `STEP <name> PASS|FAIL <detail>` line per step; exit status 0 only when every step passed.
"use strict";
const { spawn, spawnSync, execFileSync } = require("child_process");
const fs = require("fs");
const net = require("net");
const os = require("os");
const path = require("path");

const ROOT = path.resolve(__dirname, "..", "..");
const EXT = path.join(ROOT, "client-vscode");
const { chromium } = require(require.resolve("playwright-core", { paths: [EXT] }));
const env = process.env;
const WS = env.MLJOB_E2E_WORKSPACE;
const CS = env.MLJOB_E2E_CODE_SERVER || path.join(EXT, ".e2e/code-server/node_modules/.bin/code-server");
const VSIX = env.MLJOB_E2E_VSIX || path.join(EXT, "mljob.vsix");
const PY = env.MLJOB_E2E_PYTHON || path.join(ROOT, ".venv/bin/python");
const SHOTS = env.MLJOB_E2E_SHOTS || fs.mkdtempSync(path.join(os.tmpdir(), "mljob-e2e-shots-"));
const ALL = ["install", "workbench", "status", "diagnostics", "completion", "lens", "restart", "migrate", "run-button",
  "run", "cancel", "show-runs"];
const STEPS = new Set((env.MLJOB_E2E_STEPS || ALL.join(",")).split(",").map((s) => s.trim()).filter(Boolean));
const BAD_FILE = "hello-world-input.yml"; // corpus file with a misspelt input reference (MLJ201)
const RUN_FILE = "run-hello.yml"; // a small job that runs as a plain process
const SLOW_FILE = "sleepy.yml"; // a job that prints a line, then sleeps: for Cancel
const OTHER_FILE = "configmap.yml"; // YAML that is not a job (Kubernetes): no ▷, no lens
const OLD_FILE = "hello-world-2021.yml"; // the corpus' 2021 preview syntax, for "Migrate to current syntax"
const RUN_MARKER = "mljob-e2e says hello"; // what the run's command prints
const DIAG_TIMEOUT_MS = 1000 * Number(env.MLJOB_E2E_DIAG_TIMEOUT || 60); // the negative control need not wait a minute

const t0 = Date.now();
const log = (m) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}`);
const results = [];
function record(name, ok, detail) {
  results.push({ name, ok });
  console.log(`STEP ${name} ${ok ? "PASS" : "FAIL"} ${String(detail).replace(/\s+/g, " ").slice(0, 400)}`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// Everything code-server writes (config, user data, extensions, sockets, MLJOB_HOME for the runs) stays in one temp
// folder, removed at the end. It is under /tmp rather than the repository: VS Code puts its IPC sockets in TMPDIR,
// and a socket path longer than 107 bytes fails (a deep checkout would get there).
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mljob-cs-"));
const csEnv = {
  ...env, XDG_CONFIG_HOME: path.join(tmp, "cfg"), XDG_DATA_HOME: path.join(tmp, "data"),
  XDG_STATE_HOME: path.join(tmp, "state"), XDG_CACHE_HOME: path.join(tmp, "cache"), TMPDIR: tmp,
  MLJOB_HOME: path.join(tmp, "mljob-home"),
};
const userData = path.join(tmp, "user");
const extDir = path.join(tmp, "ext");
const settings = {
  "mljob.python": PY,
  "mljob.run.localCompute": "process", // no Docker needed for the run step
  "security.workspace.trust.enabled": false,
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.welcomePage.walkthroughs.openOnInstall": false,
  "telemetry.telemetryLevel": "off",
  "extensions.autoCheckUpdates": false,
  "extensions.autoUpdate": false,
  "editor.wordBasedSuggestions": "off", // completion items can then only come from our server
  "editor.quickSuggestions": { other: false, comments: false, strings: false },
  "files.autoSave": "off",
};
if (env.MLJOB_E2E_SERVER_COMMAND) settings["mljob.server.command"] = JSON.parse(env.MLJOB_E2E_SERVER_COMMAND);
fs.mkdirSync(path.join(userData, "User"), { recursive: true });
fs.writeFileSync(path.join(userData, "User/settings.json"), JSON.stringify(settings, null, 1));
const common = ["--user-data-dir", userData, "--extensions-dir", extDir];

async function waitFor(what, timeoutMs, probe) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    last = await probe();
    if (last && last.ok) return last;
    if (last && last.final) break; // the UI already says it will not happen
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${what}: not seen${last && last.final ? "" : ` within ${timeoutMs / 1000}s`}` +
    `${last && last.seen ? `; saw: ${last.seen}` : ""}`);
}

async function main() {
  if (!WS || !fs.existsSync(path.join(WS, BAD_FILE))) throw new Error("MLJOB_E2E_WORKSPACE must hold " + BAD_FILE);
  fs.mkdirSync(SHOTS, { recursive: true });
  log(`screenshots: ${SHOTS}`);

  // install: the .vsix through code-server's own CLI, as a user would.
  const installed = execFileSync(CS, [...common, "--install-extension", VSIX], { encoding: "utf8", env: csEnv });
  const listed = execFileSync(CS, [...common, "--list-extensions", "--show-versions"], { encoding: "utf8", env: csEnv });
  record("install", /mljob\.mljob@/.test(listed), `${installed.trim().split("\n").pop()} | ${listed.trim()}`);

  const port = await freePort();
  const cfg = path.join(tmp, "config.yaml");
  fs.writeFileSync(cfg, `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
  const srv = spawn(CS, ["--config", cfg, ...common, "--disable-telemetry", "--disable-update-check",
    "--disable-workspace-trust", "--disable-getting-started-override", WS],
  { stdio: ["ignore", "pipe", "pipe"], detached: true, env: csEnv });
  let srvOut = "";
  srv.stdout.on("data", (d) => { srvOut += d; });
  srv.stderr.on("data", (d) => { srvOut += d; });
  let browser;
  try {
    await waitFor("code-server listening", 60000, async () => ({ ok: /HTTP server listening/.test(srvOut) }));
    browser = await chromium.launch({
      executablePath: env.MLJOB_E2E_CHROMIUM || "/usr/bin/chromium", headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const shot = async (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`) }).catch(() => {});
    failShot = () => shot("99-harness-failure");
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(WS)}`);
    await page.waitForSelector(".monaco-workbench", { timeout: 90000 });
    record("workbench", true, await page.title());
    await page.waitForTimeout(2000);
    await openFile(page, BAD_FILE);
    await shot("01-opened");

    await step("status", async () => {
      // The status-bar item's accessible label says what state the server is in.
      const r = await waitFor("status bar 'mljob language server running'", 60000, async () => {
        const labels = await statusLabels(page);
        return { ok: labels.includes("mljob language server running"), seen: labels.join(" | "),
          final: labels.includes("mljob language server not running") };
      }).catch(async (e) => { await shot("02-status"); throw e; });
      await shot("02-status");
      return r.seen;
    });

    await step("diagnostics", async () => {
      await page.keyboard.press("Control+Shift+M"); // Problems panel
      const r = await waitFor("MLJ201 in the Problems panel", DIAG_TIMEOUT_MS, async () => {
        const text = (await page.locator(".markers-panel .monaco-list-rows").textContent().catch(() => "")) || "";
        return { ok: /MLJ201/.test(text) && /hello_strng/.test(text), seen: text.slice(0, 300) };
      }).catch(async (e) => { await shot("03-problems"); throw e; });
      const squiggle = await page.locator(".monaco-editor .squiggly-error").count();
      await shot("03-problems");
      if (squiggle === 0) throw new Error("diagnostic listed but no error squiggle in the editor");
      return r.seen;
    });

    await step("completion", async () => {
      await focusEditor(page);
      await page.keyboard.press("Control+End"); // an empty top-level line: the keys a command job can still have
      await page.keyboard.press("Control+Space");
      const r = await waitFor("our completion items", 20000, async () => {
        const labels = await page.$$eval(".suggest-widget .monaco-list-row .label-name",
          (els) => els.map((e) => e.textContent.trim())).catch(() => []);
        const message = (await page.locator(".suggest-widget .message").textContent().catch(() => "")) || "";
        return { ok: ["compute", "display_name"].every((k) => labels.includes(k)), seen: JSON.stringify(labels) + message };
      }).catch(async (e) => { await shot("04-completion"); throw e; });
      await shot("04-completion");
      await page.keyboard.press("Escape");
      return r.seen;
    });

    await step("lens", async () => {
      // The server's lens, executed by the server (not routed to the runner): it answers with a one-line summary.
      const r = await waitFor("a 'Validate' code lens on the job", 30000, async () => {
        const lenses = await lensTitles(page);
        return { ok: lenses.some((t) => /Validate/.test(t)), seen: JSON.stringify(lenses) };
      }).catch(async (e) => { await shot("05-lens"); throw e; });
      await page.locator(".monaco-editor .codelens-decoration a", { hasText: "Validate" }).first().click();
      const said = await waitFor("the server's validation summary in a notification", 30000, async () => {
        const toasts = (await page.locator(".notifications-toasts").textContent().catch(() => "")) || "";
        return { ok: /1 error/.test(toasts) && /hello_strng/.test(toasts), seen: toasts.slice(0, 300) };
      }).catch(async (e) => { await shot("05-lens"); throw e; });
      await shot("05-lens");
      await page.keyboard.press("Escape");
      return `${r.seen} → ${said.seen}`;
    });

    await step("restart", async () => {
      // The server dies (SIGKILL): the extension starts a new one, and the file is judged again.
      const before = serverPids();
      if (before.length === 0) throw new Error("no `mljob lsp` process of this code-server found");
      for (const pid of before) process.kill(pid, "SIGKILL");
      const r = await waitFor("a new server, running, publishing MLJ201 again", 60000, async () => {
        const fresh = serverPids().filter((p) => !before.includes(p));
        const labels = await statusLabels(page);
        const problems = (await page.locator(".markers-panel .monaco-list-rows").textContent().catch(() => "")) || "";
        return { ok: fresh.length > 0 && labels.includes("mljob language server running") && /MLJ201/.test(problems),
          seen: `old pids ${before}, new ${fresh}, status ${labels}` };
      }).catch(async (e) => { await shot("06-restart"); throw e; });
      return r.seen;
    });

    await step("migrate", async () => {
      await openFile(page, OLD_FILE);
      await paletteCommand(page, "mljob: Migrate to current syntax");
      const r = await waitFor("the 2021 syntax rewritten in the editor", 30000, async () => {
        const text = await editorText(page);
        return { ok: /compute: local/.test(text) && /environment:\s*image: docker\.io\/python/.test(text) &&
          !/docker:|target:/.test(text), seen: text.slice(0, 200) };
      }).catch(async (e) => { await shot("07-migrate"); throw e; });
      await shot("07-migrate");
      return r.seen;
    });

    // "Run job", twice: the editor-title ▷ (the extension's own command) and the server's "Run locally" code lens
    // (routed by the client's middleware to the same runner). Both must end Completed in the output.
    await step("run-button", async () => {
      // The ▷ shows on job files only (the server gives them lenses): not on a Kubernetes manifest.
      await openFile(page, OTHER_FILE);
      await page.waitForTimeout(3000);
      if (await page.locator(".editor-actions [aria-label^='Run job locally']").count()) {
        throw new Error(`▷ Run job locally shown on ${OTHER_FILE}, which is not a job`);
      }
      await openFile(page, RUN_FILE);
      return waitForRun(page, shot, "run-button", () =>
        page.locator(".editor-actions [aria-label^='Run job locally']").first().click({ timeout: 20000 }));
    });

    await step("run", async () => {
      await openFile(page, RUN_FILE);
      const lens = await waitFor("a 'Run locally' code lens on the small job", 30000, async () => {
        const lenses = await lensTitles(page);
        return { ok: lenses.some((t) => /Run (locally|job)/.test(t)), seen: JSON.stringify(lenses) };
      }).catch(async (e) => { await shot("09-run-lens"); throw e; });
      log("lenses: " + lens.seen);
      return waitForRun(page, shot, "run-lens", () =>
        page.locator(".monaco-editor .codelens-decoration a", { hasText: /Run (locally|job)/ }).first().click());
    });
    await step("cancel", async () => {
      // Cancel in the progress notification stops the run (Ctrl-C to the runner), which ends Canceled.
      await openFile(page, SLOW_FILE);
      await page.locator(".editor-actions [aria-label^='Run job locally']").first().click({ timeout: 20000 });
      await waitFor("the slow job's first line in the output", 120000, async () => {
        const out = await outputText(page);
        return { ok: out.includes("mljob-e2e sleeping"), seen: out.slice(-200) };
      });
      await page.locator(".notifications-toasts .monaco-button", { hasText: "Cancel" }).first().click({ timeout: 10000 });
      const r = await waitFor("the run to end Canceled", 60000, async () => {
        const out = await outputText(page);
        const toasts = (await page.locator(".notifications-toasts").textContent().catch(() => "")) || "";
        return { ok: /── \S+: Cancel+ed/.test(out) && /mljob: run \S+ Cancel+ed/.test(toasts),
          seen: `output: ${out.slice(-200)} | toasts: ${toasts.slice(0, 200)}` };
      }).catch(async (e) => { await shot("10-cancel"); throw e; });
      await shot("10-cancel");
      await page.keyboard.press("Escape");
      return r.seen;
    });

    await step("show-runs", async () => {
      await paletteCommand(page, "mljob: Show runs");
      const r = await waitFor("earlier runs offered in a pick", 60000, async () => {
        const rows = await page.$$eval(".quick-input-list .monaco-list-row", (els) => els.map((e) => e.textContent.trim()))
          .catch(() => []);
        return { ok: rows.some((t) => /^run-hello_/.test(t)), seen: JSON.stringify(rows.slice(0, 5)) };
      }).catch(async (e) => { await shot("11-show-runs"); throw e; });
      await shot("11-show-runs");
      await page.keyboard.press("Escape");
      return r.seen;
    });
  } catch (e) {
    await failShot();
    throw e;
  } finally {
    if (browser) await browser.close().catch(() => {});
    try { process.kill(-srv.pid, "SIGTERM"); } catch (e) { /* already gone */ }
    if (results.some((r) => !r.ok)) console.log("code-server log (tail):\n" + srvOut.slice(-1500));
  }
}

/** A run started by `click`: its log streams into the "mljob runs" output, which ends with `── NAME: Completed`, and
 * the notification says `mljob: run NAME Completed` for that same NAME. The output is cleared first, so what is
 * matched can only come from this run. */
async function waitForRun(page, shot, label, click) {
  const clear = page.locator(".part.panel .actions-container [aria-label^='Clear Output']");
  if (await clear.count()) await clear.first().click().catch(() => {});
  await click();
  await page.waitForTimeout(1500);
  await shot(`${label}-started`);
  const seen = new Set();
  const done = await waitFor("the run to complete in the output and the notification", 180000, async () => {
    const out = await outputText(page);
    const toasts = (await page.locator(".notifications-toasts").textContent().catch(() => "")) || "";
    if (out.includes(RUN_MARKER)) seen.add("marker");
    const name = (/── (\S+): Completed/.exec(out) || [])[1];
    if (name) seen.add(`completed-in-output(${name})`);
    if (name && toasts.includes(`mljob: run ${name} Completed`)) seen.add("completed-notification");
    return { ok: seen.size === 3, seen: `${[...seen]} | output: ${out.slice(-300)} | toasts: ${toasts.slice(0, 200)}` };
  }).catch(async (e) => { await shot(`${label}-done`); throw e; });
  await shot(`${label}-done`);
  await page.keyboard.press("Escape");
  return done.seen;
}

async function outputText(page) {
  // Monaco draws spaces as U+00A0: normalise before matching.
  const lines = await page.locator(".part.panel .monaco-editor .view-lines").allTextContents().catch(() => []);
  return lines.join("\n").replace(/\u00a0/g, " ");
}

async function step(name, fn) {
  if (!STEPS.has(name)) return;
  try {
    record(name, true, await fn());
  } catch (e) {
    record(name, false, e.message);
  }
}

async function openFile(page, name) {
  // Quick Open as a user would; Enter only once the file is listed (an early Enter is lost while the list loads).
  const tab = page.locator(".tabs-container .tab", { hasText: name }).first();
  for (let attempt = 1; ; attempt++) {
    await page.keyboard.press("Escape");
    await page.keyboard.press("Control+P");
    await page.waitForSelector(".quick-input-widget input", { timeout: 20000 });
    await page.keyboard.type(name);
    await page.locator(".quick-input-list .monaco-list-row", { hasText: name }).first().waitFor({ timeout: 20000 });
    await page.waitForTimeout(300);
    await page.keyboard.press("Enter");
    try {
      await tab.waitFor({ timeout: 10000 });
      break;
    } catch (e) {
      if (attempt === 3) throw e;
    }
  }
  await page.waitForSelector(".monaco-editor .view-lines", { timeout: 20000 });
}

async function paletteCommand(page, title) {
  await page.keyboard.press("Escape");
  await page.keyboard.press("Control+Shift+P");
  await page.waitForSelector(".quick-input-widget input", { timeout: 20000 });
  await page.keyboard.type(title);
  await page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first().waitFor({ timeout: 20000 });
  await page.keyboard.press("Enter");
}

async function editorText(page) {
  const lines = await page.locator(".editor-group-container.active .monaco-editor .view-line").allTextContents()
    .catch(() => []);
  return lines.join("\n").replace(/\u00a0/g, " ");
}

async function statusLabels(page) {
  return page.$$eval(".statusbar-item [aria-label^='mljob language server']",
    (els) => els.map((e) => e.getAttribute("aria-label"))).catch(() => []);
}

/** Our language servers: `mljob lsp` processes carrying this run's MLJOB_HOME (inherited from code-server). */
function serverPids() {
  const mark = `MLJOB_HOME=${csEnv.MLJOB_HOME}`;
  const pids = [];
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (!(argv.includes("mljob") && argv.includes("lsp"))) continue;
      if (fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(mark)) pids.push(Number(pid));
    } catch (e) { /* the process ended while we looked */ }
  }
  return pids;
}

async function focusEditor(page) {
  await page.locator(".editor-group-container.active .monaco-editor .view-lines").first().click();
}

async function lensTitles(page) {
  return page.$$eval(".monaco-editor .codelens-decoration a", (els) => els.map((e) => e.textContent.trim()))
    .catch(() => []);
}

let failShot = async () => {};
main()
  .catch(async (e) => { record("harness", false, e.stack || e.message); })
  .finally(() => {
    // The runs' tracking server belongs to this MLJOB_HOME: stopped with it (by its pid and start time).
    spawnSync(PY, ["-m", "mljob", "tracking", "stop"], { env: { ...env, MLJOB_HOME: csEnv.MLJOB_HOME, MLJOB_DAEMON: "0" },
      timeout: 60000 });
    if (!env.MLJOB_E2E_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
    const failed = results.filter((r) => !r.ok).map((r) => r.name);
    const expected = ALL.filter((s) => STEPS.has(s));
    const missing = expected.filter((s) => !results.some((r) => r.name === s));
    for (const s of missing) record(s, false, "not reached");
    console.log(`SUMMARY ${JSON.stringify({ passed: results.filter((r) => r.ok).map((r) => r.name), failed: [...failed, ...missing] })}`);
    process.exit(failed.length || missing.length ? 1 : 0);
  });

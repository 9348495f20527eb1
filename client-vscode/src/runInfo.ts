// What a finished run was: read from `mljob job show -n NAME` (JSON when it prints JSON, else `key: value` lines),
// falling back on the run's own log. Pure functions, so the shapes the runner prints are easy to follow.
import * as path from "path";

export interface RunInfo {
  name: string;
  status: string; // Completed, Failed, Canceled, … as the runner says it; derived from the exit status otherwise
  outputs?: string; // a local folder, when the runner names one
}

const STATUS_KEYS = ["status", "state"];
// `mljob job show` prints `artifacts at: file:///…` (outputs, logs and user_logs of the run); the others are the
// names other versions of the runner could use for the same folder.
const OUTPUT_KEYS = ["artifacts_at", "outputs_dir", "output_dir", "outputs_folder", "outputs_path", "outputs",
  "artifacts_dir", "artifact_location", "artifact_uri", "run_dir"];

/** An absolute path or a file:// URI; anything else (prose, http(s), azureml://) is nothing to open here. */
function localFolder(value: unknown): string | undefined {
  if (typeof value !== "string" || value === "") return undefined;
  let p = value.trim();
  if (p.startsWith("file://")) p = decodeURIComponent(p.slice("file://".length));
  return path.isAbsolute(p) ? p : undefined;
}

function fromObject(obj: Record<string, unknown>): Partial<RunInfo> {
  const lower = new Map(Object.entries(obj).map(([k, v]) => [k.toLowerCase(), v]));
  const status = STATUS_KEYS.map((k) => lower.get(k)).find((v) => typeof v === "string") as string | undefined;
  let outputs: string | undefined;
  for (const key of OUTPUT_KEYS) {
    outputs = localFolder(lower.get(key));
    if (outputs) break;
  }
  const name = typeof lower.get("name") === "string" ? (lower.get("name") as string) : undefined;
  return { status, outputs, name };
}

/** `job show` output → what it says about status and outputs (fields it does not print stay undefined). */
export function parseShow(text: string): Partial<RunInfo> {
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) {
    try {
      return fromObject(JSON.parse(trimmed) as Record<string, unknown>);
    } catch {
      // not JSON after all: read it as lines
    }
  }
  const fields: Record<string, string> = {};
  for (const line of trimmed.split(/\r?\n/)) {
    const m = /^\s*([A-Za-z_ ]+?)\s*:\s+(.+?)\s*$/.exec(line);
    if (m && !(m[1].toLowerCase().replace(/ /g, "_") in fields)) fields[m[1].toLowerCase().replace(/ /g, "_")] = m[2];
  }
  return fromObject(fields);
}

/** A status word in the run's own last lines (`--stream` ends by saying how the job ended). */
export function statusFromLog(lines: string[]): string | undefined {
  for (const line of lines.slice(-20).reverse()) {
    const m = /\b(Completed|Failed|Canceled|Cancelled|NotResponding|Killed)\b/.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

/** Readable unique run name, chosen by us so `job show` can follow the run whatever the runner prints. */
export function newRunName(file: string, now = new Date()): string {
  // The runner accepts ^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$ (runner/names.py).
  let stem = path.basename(file).replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_-]+/g, "_").slice(0, 40);
  if (!/^[A-Za-z0-9]/.test(stem)) stem = `job${stem}`;
  const stamp = now.toISOString().replace(/[-:]/g, "").replace("T", "_").slice(0, 15);
  const rand = Math.floor(Math.random() * 0x10000).toString(16).padStart(4, "0");
  return `${stem}_${stamp}_${rand}`;
}

export function isSuccess(status: string): boolean {
  return /^(completed|succeeded|finished)$/i.test(status);
}

export interface RunRow {
  name: string;
  description: string; // the rest of its `job list` line (status, experiment, compute, created, duration)
}

/** Runs in `job list` output: a JSON list of objects with `name`, else the first column under a header. */
export function runRows(text: string): RunRow[] {
  const trimmed = text.trim();
  if (trimmed.startsWith("[")) {
    try {
      const rows = JSON.parse(trimmed) as unknown[];
      return rows.flatMap((r) => {
        if (!r || typeof r !== "object" || typeof (r as { name?: unknown }).name !== "string") return [];
        const { name, ...rest } = r as { name: string };
        return [{ name, description: Object.values(rest).filter((v) => typeof v !== "object").join("  ") }];
      });
    } catch {
      // fall through to columns
    }
  }
  return trimmed.split(/\r?\n/).flatMap((line) => {
    const [name = "", ...rest] = line.trim().split(/\s+/);
    const ok = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name) && !/^(name|no|-+)$/i.test(name);
    return ok ? [{ name, description: rest.join("  ") }] : [];
  });
}

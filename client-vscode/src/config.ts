// Where the server and the runner are: the settings under `mljob.*`, resolved to command lines.
import * as os from "os";
import * as path from "path";
import * as vscode from "vscode";

export interface Launch {
  command: string;
  args: string[];
}

export const SECTION = "mljob";

function workspaceFolder(resource?: vscode.Uri): string | undefined {
  const folder = (resource && vscode.workspace.getWorkspaceFolder(resource)) ?? vscode.workspace.workspaceFolders?.[0];
  return folder?.uri.fsPath;
}

/** `${workspaceFolder}` and a leading `~` in a setting, as users write them in other extensions' settings. */
export function expand(value: string, resource?: vscode.Uri): string {
  const folder = workspaceFolder(resource);
  let out = value.replace(/\$\{workspaceFolder\}/g, folder ?? "");
  if (out === "~" || out.startsWith("~/")) out = path.join(os.homedir(), out.slice(1));
  return out;
}

/** A path setting: expanded, and relative ones taken from the workspace folder (the server has no folder of its own). */
export function resolvePath(value: unknown, resource?: vscode.Uri): string | undefined {
  if (typeof value !== "string" || value.trim() === "") return undefined;
  const out = expand(value.trim(), resource);
  const folder = workspaceFolder(resource);
  return path.isAbsolute(out) || !folder ? out : path.join(folder, out);
}

// The Python extension's API is optional and loosely typed across its versions: read only what we need.
interface PythonApi {
  environments?: { getActiveEnvironmentPath?(resource?: vscode.Uri): { path?: string } | undefined };
  settings?: { getExecutionDetails?(resource?: vscode.Uri): { execCommand?: string[] } | undefined };
}

async function pythonFromPythonExtension(resource?: vscode.Uri): Promise<string | undefined> {
  const ext = vscode.extensions.getExtension<PythonApi>("ms-python.python");
  if (!ext) return undefined;
  try {
    const api = ext.isActive ? ext.exports : await ext.activate();
    const active = api?.environments?.getActiveEnvironmentPath?.(resource)?.path;
    if (active) return active;
    return api?.settings?.getExecutionDetails?.(resource)?.execCommand?.[0];
  } catch {
    return undefined; // a broken Python extension must not keep our server from starting
  }
}

/** `mljob.python`, else the Python extension's interpreter, else `python3` from PATH. */
export async function python(resource?: vscode.Uri): Promise<string> {
  const setting = vscode.workspace.getConfiguration(SECTION, resource).get<string>("python", "").trim();
  if (setting) return expand(setting, resource);
  return (await pythonFromPythonExtension(resource)) ?? "python3";
}

function configuredServerCommand(resource?: vscode.Uri): string[] {
  const raw = vscode.workspace.getConfiguration(SECTION, resource).get<unknown>("server.command");
  if (!Array.isArray(raw)) return [];
  return raw.filter((a): a is string => typeof a === "string").map((a) => expand(a, resource));
}

/** The language server's command line. */
export async function serverLaunch(resource?: vscode.Uri): Promise<Launch> {
  const custom = configuredServerCommand(resource);
  if (custom.length > 0) return { command: custom[0], args: custom.slice(1) };
  return { command: await python(resource), args: ["-m", "mljob", "lsp"] };
}

/** The runner's command line prefix (verbs are appended): the server's command without its `lsp`, so one
 * setting moves both; a custom server command that does not end in `lsp` leaves the runner on `python -m mljob`. */
export async function cliLaunch(resource?: vscode.Uri): Promise<Launch> {
  const custom = configuredServerCommand(resource);
  if (custom.length > 1 && custom[custom.length - 1] === "lsp") {
    return { command: custom[0], args: custom.slice(1, -1) };
  }
  return { command: await python(resource), args: ["-m", "mljob"] };
}

export function describe(launch: Launch): string {
  return [launch.command, ...launch.args].map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" ");
}

/** Settings whose change means the server must be started again (the rest reach it through didChangeConfiguration). */
export function affectsServer(e: vscode.ConfigurationChangeEvent): boolean {
  return e.affectsConfiguration("mljob.server.command") || e.affectsConfiguration("mljob.python");
}

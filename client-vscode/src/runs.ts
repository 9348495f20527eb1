// Running a job: the runner CLI streams the log into the "mljob runs" output channel while a notification shows
// progress; the run ends with its name, status and a button to its outputs. The extension runs the CLI itself
// (rather than the server's run command) so that the log streams line by line and Cancel can stop the run.
import * as path from "path";
import * as vscode from "vscode";
import { cliLaunch, describe, SECTION } from "./config";
import { failureText, run, start } from "./proc";
import { isSuccess, newRunName, parseShow, RunInfo, runRows, statusFromLog } from "./runInfo";

export type RunTarget = { kind: "local" } | { kind: "submit" };

export class Runs implements vscode.Disposable {
  readonly channel = vscode.window.createOutputChannel("mljob runs");

  dispose(): void {
    this.channel.dispose();
  }

  /** The job file a command is about: its argument (a lens passes the URI as a string), else the active editor. */
  static target(arg: unknown): vscode.Uri | undefined {
    if (arg instanceof vscode.Uri) return arg;
    if (typeof arg === "string" && arg) return arg.includes("://") ? vscode.Uri.parse(arg) : vscode.Uri.file(arg);
    return vscode.window.activeTextEditor?.document.uri;
  }

  async runJob(uri: vscode.Uri | undefined, target: RunTarget): Promise<RunInfo | undefined> {
    if (!uri || uri.scheme !== "file") {
      void vscode.window.showWarningMessage("mljob: open a saved job file (.yml) to run it.");
      return undefined;
    }
    // The runner reads the file from disk: what the user sees must be what runs.
    const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
    if (open?.isDirty && !(await open.save())) return undefined;

    const file = uri.fsPath;
    const name = newRunName(file);
    const args = ["job", "create", "-f", file, "--name", name, "--stream"];
    if (target.kind === "local") {
      const compute = vscode.workspace.getConfiguration(SECTION, uri).get<string>("run.localCompute", "local");
      args.push("--set", `compute=${compute}`);
    }
    const cli = await cliLaunch(uri);
    const cwd = path.dirname(file);
    const verb = target.kind === "local" ? "Running" : "Submitting";
    this.channel.appendLine(`\n── ${verb} ${path.basename(file)} as ${name} ──`);
    this.channel.appendLine(`$ ${describe({ command: cli.command, args: [...cli.args, ...args] })}`);
    if (vscode.workspace.getConfiguration(SECTION, uri).get<boolean>("run.revealOutput", true)) {
      this.channel.show(true);
    }

    const lines: string[] = [];
    const finished = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `mljob: ${verb.toLowerCase()} ${path.basename(file)}`,
        cancellable: true },
      async (progress, token) => {
        progress.report({ message: `${name} — starting the runner…` });
        let last = 0;
        const proc = start(cli, args, {
          cwd,
          onLine: (line) => {
            lines.push(line);
            this.channel.appendLine(line);
            const now = Date.now();
            if (now - last > 250) { // a notification redrawn per line would flicker and cost more than the run
              last = now;
              progress.report({ message: line.slice(0, 120) });
            }
          },
        });
        token.onCancellationRequested(() => {
          this.channel.appendLine("── cancel requested: stopping the run ──");
          proc.interrupt();
        });
        return proc.done;
      },
    );

    if (finished.spawnError) {
      this.channel.appendLine(`could not start the runner: ${finished.spawnError.message}`);
      void vscode.window.showErrorMessage(`mljob: could not start ${cli.command}: ${finished.spawnError.message}. ` +
        "Set mljob.python to an interpreter that has mljob installed.", "Open settings").then((pick) => {
        if (pick) void vscode.commands.executeCommand("workbench.action.openSettings", "mljob.python");
      });
      return undefined;
    }
    // The runner's record is the truth about status and outputs; the exit status is the fallback.
    const shown = await run(cli, ["job", "show", "-n", name], cwd);
    const fromShow = shown.code === 0 ? parseShow(shown.stdout) : {};
    const status = fromShow.status ?? statusFromLog(lines) ?? (finished.code === 0 ? "Completed" : "Failed");
    const info: RunInfo = { name, status, outputs: fromShow.outputs };
    this.channel.appendLine(`── ${name}: ${status}${finished.code ? ` (exit status ${finished.code})` : ""}` +
      `${info.outputs ? ` · outputs: ${info.outputs}` : ""} ──`);
    void this.announce(info);
    return info;
  }

  private async announce(info: RunInfo): Promise<void> {
    const buttons = info.outputs ? ["Open outputs", "Show log"] : ["Show log"];
    const text = `mljob: run ${info.name} ${info.status}`;
    const pick = isSuccess(info.status)
      ? await vscode.window.showInformationMessage(text, ...buttons)
      : await vscode.window.showErrorMessage(text, ...buttons);
    if (pick === "Show log") this.channel.show();
    if (pick === "Open outputs" && info.outputs) await openFolder(vscode.Uri.file(info.outputs));
  }

  /** `mljob job list` into the channel, then a pick of a run for `mljob job show`. */
  async showRuns(): Promise<void> {
    const resource = vscode.window.activeTextEditor?.document.uri;
    const cli = await cliLaunch(resource);
    const listed = await run(cli, ["job", "list"]);
    this.channel.appendLine(`\n$ ${describe({ command: cli.command, args: [...cli.args, "job", "list"] })}`);
    this.channel.appendLine(listed.stdout || listed.stderr);
    this.channel.show(true);
    if (listed.code !== 0 || listed.spawnError) {
      void vscode.window.showErrorMessage(`mljob job list failed: ${failureText(listed)}`);
      return;
    }
    const rows = runRows(listed.stdout);
    if (rows.length === 0) return;
    const picked = await vscode.window.showQuickPick(rows.map((r) => ({ label: r.name, description: r.description })),
      { placeHolder: "Show a run (mljob job show -n …)", matchOnDescription: true });
    if (!picked) return;
    const name = picked.label;
    const shown = await run(cli, ["job", "show", "-n", name]);
    this.channel.appendLine(`\n$ mljob job show -n ${name}`);
    this.channel.appendLine(shown.stdout || shown.stderr);
    const outputs = parseShow(shown.stdout).outputs;
    if (outputs && (await vscode.window.showInformationMessage(`mljob: ${name}`, "Open outputs")) === "Open outputs") {
      await openFolder(vscode.Uri.file(outputs));
    }
  }
}

/** An outputs folder: in the Explorer when it is in the workspace, else a file dialog rooted there (works remote too). */
async function openFolder(folder: vscode.Uri): Promise<void> {
  if (vscode.workspace.getWorkspaceFolder(folder)) {
    await vscode.commands.executeCommand("revealInExplorer", folder);
    return;
  }
  const picked = await vscode.window.showOpenDialog({ defaultUri: folder, canSelectMany: true, openLabel: "Open" });
  for (const file of picked ?? []) await vscode.window.showTextDocument(file, { preview: false });
}

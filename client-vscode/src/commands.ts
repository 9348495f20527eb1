// Validate and Migrate from the palette. Both prefer the server when it offers the feature, and fall back on the
// runner CLI, which holds the same code (`mljob validate`, `mljob migrate`).
import * as path from "path";
import * as vscode from "vscode";
import { State } from "vscode-languageclient/node";
import { cliLaunch } from "./config";
import { failureText, run } from "./proc";
import { Runs } from "./runs";
import { ServerManager } from "./server";

function serverHasCommand(server: ServerManager, command: string): boolean {
  const client = server.client;
  if (!client || client.state !== State.Running) return false;
  return client.initializeResult?.capabilities.executeCommandProvider?.commands.includes(command) ?? false;
}

export async function validate(server: ServerManager, runs: Runs, arg: unknown): Promise<void> {
  const uri = Runs.target(arg);
  if (!uri) return;
  if (serverHasCommand(server, "mljob.validate")) {
    // Through the client's registered command, with the lens's arguments [uri, document number]: the server
    // re-judges the file, publishes its diagnostics and says the one-line result itself (window/showMessage).
    await vscode.commands.executeCommand("mljob.validate", uri.toString(), 0);
  } else {
    if (uri.scheme !== "file") return;
    const cli = await cliLaunch(uri);
    const res = await run(cli, ["validate", uri.fsPath], path.dirname(uri.fsPath));
    runs.channel.appendLine(`\n$ mljob validate ${uri.fsPath}`);
    runs.channel.appendLine([res.stdout.trimEnd(), res.stderr].filter(Boolean).join("\n"));
    if (res.spawnError) void vscode.window.showErrorMessage(`mljob validate: ${failureText(res)}`);
    else void vscode.window.showInformationMessage(`mljob: ${res.stderr.trim().split("\n").pop() ?? "validated"}`);
  }
  await vscode.commands.executeCommand("workbench.actions.view.problems");
}

/** `mljob migrate FILE` prints the migrated file; it replaces the buffer as one edit, so Undo restores the 2021 form. */
export async function migrate(runs: Runs, arg: unknown): Promise<void> {
  const uri = Runs.target(arg);
  if (!uri || uri.scheme !== "file") {
    void vscode.window.showWarningMessage("mljob: open a saved job file to migrate it.");
    return;
  }
  const doc = await vscode.workspace.openTextDocument(uri);
  if (doc.isDirty && !(await doc.save())) return; // the CLI reads the file from disk
  const cli = await cliLaunch(uri);
  const res = await run(cli, ["migrate", uri.fsPath], path.dirname(uri.fsPath));
  if (res.code !== 0 || res.spawnError) {
    void vscode.window.showErrorMessage(`mljob migrate: ${failureText(res)}`);
    return;
  }
  const changes = res.stderr.split("\n").filter((l) => l.trim()).length;
  if (res.stdout === doc.getText() || changes === 0) {
    void vscode.window.showInformationMessage("mljob: this file already uses the current syntax.");
    return;
  }
  const edit = new vscode.WorkspaceEdit();
  edit.replace(uri, new vscode.Range(doc.positionAt(0), doc.positionAt(doc.getText().length)), res.stdout);
  if (!(await vscode.workspace.applyEdit(edit))) return;
  runs.channel.appendLine(`\n$ mljob migrate ${uri.fsPath}\n${res.stderr.trim()}`);
  void vscode.window.showInformationMessage(`mljob: migrated to the current syntax (${changes} change${changes === 1 ? "" : "s"}; Undo restores the old form).`);
}

// Entry point: wires the server manager, the status bar, the runner and the commands together.
import * as vscode from "vscode";
import { migrate, validate } from "./commands";
import { affectsServer, SECTION } from "./config";
import { Runs } from "./runs";
import { ServerManager } from "./server";
import { ServerStatus } from "./status";

let server: ServerManager | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const status = new ServerStatus("mljob.client.showServerLog");
  const runs = new Runs();
  server = new ServerManager(status, runs);
  const srv = server;
  const command = (id: string, fn: (...args: unknown[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, fn));

  // Palette ids are the extension's own (mljob.client.*): the server's lens ids (mljob.runLocally, mljob.submit,
  // mljob.validate) are registered by vscode-languageclient, and a second registration of one of those would fail.
  command("mljob.client.runLocally", (arg) => runs.runJob(Runs.target(arg), { kind: "local" }));
  command("mljob.client.submit", (arg) => runs.runJob(Runs.target(arg), { kind: "submit" }));
  command("mljob.client.validate", (arg) => validate(srv, runs, arg));
  command("mljob.client.migrate", (arg) => migrate(runs, arg));
  command("mljob.client.showRuns", () => runs.showRuns());
  command("mljob.client.restartServer", () => srv.restart());
  command("mljob.client.showServerLog", () => srv.log.show());

  context.subscriptions.push(status, runs, srv, vscode.workspace.onDidChangeConfiguration((e) => {
    if (affectsServer(e)) void srv.restart();
    else if (e.affectsConfiguration(SECTION)) void srv.settingsChanged();
  }));
  await srv.start();
}

export async function deactivate(): Promise<void> {
  await server?.stop();
}

// One status-bar item for the language server: what state it is in; a click opens its log.
import * as vscode from "vscode";

export type ServerState = "starting" | "running" | "restarting" | "failed" | "stopped";

const LOOK: Record<ServerState, { icon: string; words: string; error?: boolean }> = {
  starting: { icon: "$(loading~spin)", words: "starting" },
  running: { icon: "$(check)", words: "running" },
  restarting: { icon: "$(loading~spin)", words: "restarting after it stopped" },
  failed: { icon: "$(error)", words: "not running", error: true },
  stopped: { icon: "$(circle-slash)", words: "stopped" },
};

export class ServerStatus implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("mljob.server", vscode.StatusBarAlignment.Left, 0);
  state: ServerState = "stopped";

  constructor(openLogCommand: string) {
    this.item.name = "mljob language server";
    this.item.command = openLogCommand;
    this.set("stopped");
    this.item.show();
  }

  set(state: ServerState, detail = ""): void {
    this.state = state;
    const look = LOOK[state];
    this.item.text = `${look.icon} mljob`;
    this.item.tooltip = `mljob language server: ${look.words}${detail ? `\n${detail}` : ""}\nClick to open its log.`;
    // The error colour is what makes a dead server noticeable; the other states stay quiet.
    this.item.backgroundColor = look.error ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
    this.item.accessibilityInformation = { label: `mljob language server ${look.words}` };
  }

  dispose(): void {
    this.item.dispose();
  }
}

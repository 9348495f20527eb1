// The language client: starts `mljob lsp`, restarts it when it dies (within limits), keeps the status bar in step,
// and routes the server's run commands (from its code lens) to the extension's own runner (runs.ts).
import * as vscode from "vscode";
import {
  CloseAction,
  ConfigurationParams,
  DidChangeConfigurationNotification,
  ErrorAction,
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  ServerOptions,
  State,
} from "vscode-languageclient/node";
import { describe, Launch, resolvePath, SECTION, serverLaunch } from "./config";
import { JobFiles } from "./jobFiles";
import { Runs } from "./runs";
import { ServerStatus } from "./status";

const RESTART_WINDOW_MS = 3 * 60_000;

/** Server commands (named in lens.py) that the extension runs itself so the log streams into an output channel. */
const RUN_COMMANDS: Record<string, "local" | "submit"> = {
  "mljob.runLocally": "local",
  "mljob.submit": "submit",
};

/** The `mljob` settings as the server reads them, with path settings made absolute (the server has no folder). */
export function settingsFor(resource?: vscode.Uri): Record<string, unknown> {
  const raw = JSON.parse(JSON.stringify(vscode.workspace.getConfiguration(SECTION, resource))) as Record<string, unknown>;
  for (const key of ["computeRegistry", "environmentsFile"]) raw[key] = resolvePath(raw[key], resource) ?? "";
  return raw;
}

export class ServerManager implements vscode.Disposable {
  readonly log = vscode.window.createOutputChannel("mljob language server");
  client: LanguageClient | undefined;
  launch: Launch | undefined;
  private readonly jobs = new JobFiles();
  private deaths: number[] = [];
  private generation = 0; // a restart makes the old client's late events irrelevant

  constructor(private readonly status: ServerStatus, private readonly runs: Runs) {}

  async start(): Promise<void> {
    const generation = ++this.generation;
    this.deaths = [];
    const launch = await serverLaunch();
    this.launch = launch;
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const serverOptions: ServerOptions = {
      command: launch.command,
      args: launch.args,
      options: { cwd: folder, env: { ...process.env, PYTHONUNBUFFERED: "1" } },
    };
    const clientOptions: LanguageClientOptions = {
      // Every YAML file goes to the server: it decides what is a job ($schema, type, shape) and stays quiet otherwise.
      documentSelector: [{ scheme: "file", language: "yaml" }, { scheme: "untitled", language: "yaml" }],
      outputChannel: this.log,
      revealOutputChannelOn: RevealOutputChannelOn.Never, // the status bar says when something is wrong
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue }),
        closed: () => this.onClosed(generation),
      },
      middleware: {
        provideCodeLenses: async (document, token, next) => {
          const lenses = await next(document, token);
          this.jobs.note(document.uri, (lenses?.length ?? 0) > 0);
          return lenses;
        },
        executeCommand: async (command, args, next) => {
          const target = RUN_COMMANDS[command];
          if (target) return this.runs.runJob(Runs.target(args[0]), { kind: target });
          return next(command, args);
        },
        workspace: {
          // Pull model: answer the server's workspace/configuration with resolved paths.
          configuration: (params: ConfigurationParams) =>
            params.items.map((item) => {
              const resource = item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined;
              if (item.section === SECTION) return settingsFor(resource);
              return item.section ? vscode.workspace.getConfiguration(undefined, resource).get(item.section) ?? null : null;
            }),
        },
      },
    };
    const client = new LanguageClient("mljob", "mljob language server", serverOptions, clientOptions);
    this.client = client;
    client.onDidChangeState((e) => {
      if (generation !== this.generation) return;
      if (e.newState === State.Running) this.status.set("running", describe(launch));
      else if (e.newState === State.Starting) this.status.set(this.deaths.length ? "restarting" : "starting", describe(launch));
    });
    this.status.set("starting", describe(launch));
    this.log.appendLine(`[mljob] starting: ${describe(launch)}`);
    try {
      await client.start();
    } catch (err) {
      if (generation !== this.generation) return;
      const why = `could not start \`${describe(launch)}\`: ${err instanceof Error ? err.message : String(err)}`;
      // A server that started and died is the close handler's to judge (restart or give up): one message, not two.
      if (this.status.state === "restarting") this.log.appendLine(`[mljob] ${why}`);
      else this.failed(why);
    }
  }

  /** Push model too: settings changes reach the server at once (it re-validates open files). */
  async settingsChanged(): Promise<void> {
    if (this.client?.state !== State.Running) return;
    await this.client.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: settingsFor() } });
  }

  private onClosed(generation: number): { action: CloseAction; handled: boolean } {
    if (generation !== this.generation) return { action: CloseAction.DoNotRestart, handled: true };
    const now = Date.now();
    this.deaths = this.deaths.filter((t) => now - t < RESTART_WINDOW_MS);
    const limit = vscode.workspace.getConfiguration(SECTION).get<number>("server.maxRestarts", 5);
    if (this.deaths.length < limit) {
      this.deaths.push(now);
      this.log.appendLine(`[mljob] the server stopped; restarting (${this.deaths.length} of ${limit} in 3 minutes)`);
      this.status.set("restarting");
      return { action: CloseAction.Restart, handled: true };
    }
    this.failed(`the server stopped ${this.deaths.length + 1} times in 3 minutes; not restarting it again`);
    return { action: CloseAction.DoNotRestart, handled: true };
  }

  private failed(why: string): void {
    this.log.appendLine(`[mljob] ${why}`);
    this.status.set("failed", why);
    void vscode.window.showErrorMessage(`mljob language server: ${why}`, "Show log", "Restart", "Open settings")
      .then((pick) => {
        if (pick === "Show log") this.log.show();
        if (pick === "Restart") void this.restart();
        if (pick === "Open settings") void vscode.commands.executeCommand("workbench.action.openSettings", "mljob.server");
      });
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.generation++;
    if (client && client.state !== State.Stopped) {
      try {
        await client.stop(2000); // a hung server must not hang VS Code's shutdown
      } catch (err) {
        this.log.appendLine(`[mljob] stop: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    this.status.set("stopped");
  }

  dispose(): void {
    void this.stop();
    this.log.dispose();
  }
}

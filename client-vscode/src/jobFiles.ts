// Which open files the server treats as jobs, as a context key for `when` clauses: the editor-title ▷ shows on job
// files only, not on every YAML file (CI workflows, Kubernetes manifests). The server says so by giving a file code
// lenses (it gives them to every job document and to nothing else), so the client keeps no judgement of its own.
import * as vscode from "vscode";

export class JobFiles {
  private readonly paths = new Set<string>();

  note(uri: vscode.Uri, isJob: boolean): void {
    if (uri.scheme !== "file" || this.paths.has(uri.fsPath) === isJob) return;
    if (isJob) this.paths.add(uri.fsPath);
    else this.paths.delete(uri.fsPath);
    // `resourcePath in mljob.jobFiles` (package.json) matches a file's fsPath against this list.
    void vscode.commands.executeCommand("setContext", "mljob.jobFiles", [...this.paths]);
  }
}

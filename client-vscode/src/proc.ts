// Child processes for runner verbs: lines as they come (a run's log must stream), and an exit status.
import { spawn } from "child_process";
import * as readline from "readline";
import { Launch } from "./config";

export interface Finished {
  code: number | null; // null: killed by a signal
  signal: NodeJS.Signals | null;
  stdout: string; // exactly as printed (migrate's output is the new file)
  stderr: string;
  spawnError?: Error; // the program could not be started at all (ENOENT, EACCES)
}

export interface Running {
  done: Promise<Finished>;
  /** Ctrl-C first, so the runner stops its container and records the run; SIGKILL if it does not end. */
  interrupt(graceMs?: number): void;
}

export function start(
  launch: Launch,
  verbArgs: string[],
  opts: { cwd?: string; onLine?: (line: string, stream: "stdout" | "stderr") => void } = {},
): Running {
  // PYTHONUNBUFFERED: without it Python holds the log back in a pipe buffer and nothing streams.
  const env = { ...process.env, PYTHONUNBUFFERED: "1", PYTHONIOENCODING: "utf-8" };
  const child = spawn(launch.command, [...launch.args, ...verbArgs], { cwd: opts.cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  const raw: Buffer[] = []; // stdout kept byte for byte; stderr kept as lines (messages)
  const err: string[] = [];
  child.stdout.on("data", (chunk: Buffer) => raw.push(chunk));
  const closed: Promise<void>[] = [];
  for (const [stream, name] of [[child.stdout, "stdout"], [child.stderr, "stderr"]] as const) {
    const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
    rl.on("line", (line) => {
      if (name === "stderr") err.push(line);
      opts.onLine?.(line, name);
    });
    closed.push(new Promise((resolve) => rl.on("close", () => resolve())));
  }
  const done = new Promise<Finished>((resolve) => {
    let spawnError: Error | undefined;
    child.on("error", (e) => {
      spawnError = e;
      resolve({ code: null, signal: null, stdout: "", stderr: err.join("\n"), spawnError });
    });
    child.on("close", async (code, signal) => {
      await Promise.all(closed); // the last lines are read before the result is reported
      resolve({ code, signal, stdout: Buffer.concat(raw).toString("utf8"), stderr: err.join("\n"), spawnError });
    });
  });
  return {
    done,
    interrupt(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      void done.then(() => clearTimeout(timer));
    },
  };
}

/** Run a verb to the end and collect its output (job show, job list, migrate, validate). */
export function run(launch: Launch, verbArgs: string[], cwd?: string): Promise<Finished> {
  return start(launch, verbArgs, { cwd }).done;
}

export function failureText(f: Finished): string {
  if (f.spawnError) return f.spawnError.message;
  const tail = (f.stderr || f.stdout).trim().split("\n").slice(-5).join("\n");
  return `${f.signal ? `killed by ${f.signal}` : `exit status ${f.code}`}${tail ? `: ${tail}` : ""}`;
}

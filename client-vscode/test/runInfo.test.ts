// Unit tests of what the extension reads from the runner's output (node:test; `npm test`). The samples are what
// `mljob job show` / `job list` / `job create --stream` print (runner/cli.py).
import assert from "node:assert/strict";
import { test } from "node:test";
import { isSuccess, newRunName, parseShow, runRows, statusFromLog } from "../src/runInfo";

const SHOW = `name: e2e_try_1
status: Completed
experiment: ws
compute: process
command: echo "mljob-e2e says hello"
params:
  greeting: hello
artifacts:
  user_logs/std_log.txt (21 B)
record: MLflow run ec6c6beb5b4c4e31ba2842266aaa2b1d (experiment 1) in sqlite:////tmp/h/mlflow/mlflow.db
artifacts at: file:///tmp/h/mlflow/artifacts/ws-18ec/ec6c/artifacts
`;

test("job show: status, name and the artifacts folder", () => {
  assert.deepEqual(parseShow(SHOW), { name: "e2e_try_1", status: "Completed", outputs: "/tmp/h/mlflow/artifacts/ws-18ec/ec6c/artifacts" });
});

test("job show as JSON, and prose or remote URIs are never taken for a folder", () => {
  assert.deepEqual(parseShow('{"name": "a", "Status": "Failed", "artifact_uri": "file:///x/y%20z"}'),
    { name: "a", status: "Failed", outputs: "/x/y z" });
  assert.equal(parseShow("outputs: azureml://datastores/x\nrecord: MLflow run 1").outputs, undefined);
  assert.equal(parseShow("outputs: relative/folder").outputs, undefined);
});

test("status from the streamed log's last lines", () => {
  assert.equal(statusFromLog(["RunId: x", "Execution summary", "Status: Failed", "Show it: mljob job show -n x"]), "Failed");
  assert.equal(statusFromLog(["no status here"]), undefined);
});

test("job list: names from the first column, header skipped; JSON lists too", () => {
  const table = "NAME       STATUS     EXPERIMENT\ne2e_try_1  Completed  ws\nother-2  Failed  ws\n";
  assert.deepEqual(runRows(table), [{ name: "e2e_try_1", description: "Completed  ws" }, { name: "other-2", description: "Failed  ws" }]);
  assert.deepEqual(runRows('[{"name": "a", "status": "Failed"}, {"x": 1}, {"name": "b"}]'),
    [{ name: "a", description: "Failed" }, { name: "b", description: "" }]);
  assert.deepEqual(runRows(""), []);
});

test("run names are what the runner accepts", () => {
  const valid = /^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$/;
  for (const file of ["/w/job.yml", "/w/-odd name.yaml", "/w/_x.yml", "/w/.yml", "/w/ünï cödé.yml"]) {
    const name = newRunName(file, new Date("2026-11-28T06:12:20Z"));
    assert.match(name, valid, file);
  }
  assert.match(newRunName("/w/job.yml", new Date("2026-11-28T06:12:20Z")), /^job_20261128_061220_[0-9a-f]{4}$/);
});

test("success statuses", () => {
  assert.ok(isSuccess("Completed") && !isSuccess("Failed") && !isSuccess("Canceled"));
});

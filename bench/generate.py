"""A generated job file of a given number of lines, shaped like a big real one (many inputs, variables, tags)."""

from __future__ import annotations


def big_command_job(lines: int = 3000) -> str:
    # Proportions: inputs ~40%, environment variables ~25%, tags ~15%, the command ~10%, outputs ~10%.
    n_inputs = lines * 40 // 100 // 4
    n_env = lines * 25 // 100
    n_tags = lines * 15 // 100
    n_outputs = lines * 10 // 100 // 3
    out = [
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
        "type: command",
        "display_name: generated-big-job",
        "experiment_name: bench",
        "description: A generated job used to measure validation speed.",
        "code: src",
        "environment:",
        "  image: python:3.11-slim",
        "compute: local",
        "resources:",
        "  instance_count: 1",
        "  shm_size: 2g",
        "command: >-",
        "  python train.py",
    ]
    for i in range(n_inputs):
        out.append(f"  --input-{i} ${{{{inputs.input_{i}}}}}")
    for i in range(n_outputs):
        out.append(f"  --output-{i} ${{{{outputs.output_{i}}}}}")
    out.append("inputs:")
    for i in range(n_inputs):
        if i % 3 == 0:
            out += [f"  input_{i}:", "    type: uri_file",
                    f"    path: azureml://datastores/workspaceblobstore/paths/data/{i}.csv", "    mode: download"]
        elif i % 3 == 1:
            out += [f"  input_{i}:", "    type: uri_folder",
                    f"    path: https://example.invalid/data/{i}/", "    mode: ro_mount"]
        else:
            out += [f"  input_{i}: {i * 0.5}", f"  # literal input {i}", "", "  # ---"]
    out.append("outputs:")
    for i in range(n_outputs):
        out += [f"  output_{i}:", "    type: uri_folder", "    mode: rw_mount"]
    out.append("environment_variables:")
    out += [f"  VAR_{i}: 'value {i} ✓'" for i in range(n_env)]
    out.append("tags:")
    out += [f"  tag_{i}: t{i}" for i in range(n_tags)]
    while len(out) < lines:
        out.append(f"# padding {len(out)}")
    return "\n".join(out[:lines]) + "\n"

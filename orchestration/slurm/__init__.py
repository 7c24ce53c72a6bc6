"""A sweep as a Slurm batch job: `compact-reid slurm submit SPEC` (docs/SLURM.md).

Module by module:
- `options`: `SlurmOptions` (the allocation, the warning, requeues) and `JobSpec` (what the
  job runs, every path absolute), checked before anything is written;
- `timespec`: Slurm's `--time` in seconds, the warning's default lead;
- `script`: `render_script`, the readable batch script;
- `submit`: `plan_job` and `submit`: sbatch, Slurm's refusals, the job recorded;
- `job`: `python -m orchestration.slurm.job`, the steps the script runs in Python;
- `ports`: Ray's ports and temporary folder per job and node;
- `node`: one node's Ray (`ray start --block` under a tether), CPUs and GPUs from the allocation;
- `join`: waiting for the head and for every node, naming the missing ones;
- `driver`: the sweep inside the job, run or resumed, stopped gracefully on Slurm's signals;
- `record`: `<storage>/<sweep>/slurm.json`, what the job did;
- `status`: `job_line(storage, name)`, the job in one line for `sweep status`;
- `errors`: `SlurmError`.
"""

#!/usr/bin/env python3
"""Training job limits through boto3 on a kennel server whose clock runs 60x
faster (so AWS's 120 s stop grace is 2 s of real time):
  - StopTrainingJob on a job that ignores SIGTERM: Stopping, then SIGKILL
    after the grace period, Stopped;
  - MaxRuntimeInSeconds: the job is stopped with the secondary status
    MaxRuntimeExceeded;
  - the instance type bounds the job: OMP_NUM_THREADS / SM_NUM_CPUS are its
    vCPUs and RLIMIT_DATA its memory (ml.c5.xlarge: 4 vCPUs, 8 GiB), and the
    contract's files are in place (hyperparameters.json with string values,
    resourceconfig.json, the channel directory);
  - OpenMP threads sleep between parallel regions (OMP_WAIT_POLICY=PASSIVE)
    unless the job's Environment chooses otherwise;
  - a tuning job's ResourceLimits.MaxRuntimeInSeconds stops its running
    trials and completes it."""
import json
import os
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_jobs_boto3 as base  # noqa: E402

SCRIPT = """#!/bin/sh
# a training script that reports what the contract gave it
trap 'echo got SIGTERM, ignoring it' TERM
root=$(dirname "$SM_MODEL_DIR")
{
  echo "omp=$OMP_NUM_THREADS cpus=$SM_NUM_CPUS wait=$OMP_WAIT_POLICY"
  grep 'Max data size' /proc/self/limits
  cat "$root/input/config/hyperparameters.json" | tr -d ' \\n'; echo
  cat "$root/input/config/resourceconfig.json" | tr -d ' \\n'; echo
  ls "$SM_CHANNEL_TRAINING"
} > "$SM_MODEL_DIR/report.txt"
cat "$SM_MODEL_DIR/report.txt"
n=0
while [ $n -lt "${SM_HP_SECONDS:-0}" ]; do sleep 1; n=$((n + 1)); done
echo done
"""


def main():
    if not base.KN:
        print("KN_BIN not set")
        return 1
    try:
        import boto3
    except ImportError as e:
        print(f"skip: {e} (needs python3-boto3)")
        return 77
    base.lib.client_env(base.AKID, base.SECRET)
    tmp = tempfile.TemporaryDirectory()
    d = tmp.name
    os.makedirs(f"{d}/input")
    open(f"{d}/input/a.txt", "w").write("x")
    script = f"{d}/train.sh"
    open(script, "w").write(SCRIPT)
    os.chmod(script, 0o755)
    os.environ.pop("OMP_WAIT_POLICY", None)  # the daemon's own would win over kennel's default
    srv = base.Server(d, ["--clock-rate", "60"])
    srv.start()
    check = base.check
    try:
        sm = base.lib.client("sagemaker", srv.url, base.AKID, base.SECRET)

        def job(name, seconds, itype="ml.m5.large", max_runtime=3600, env=None):
            dd = base.definition(d, entry=[script])
            if env:
                dd["Environment"] = env
            dd["ResourceConfig"]["InstanceType"] = itype
            dd["StoppingCondition"]["MaxRuntimeInSeconds"] = max_runtime
            sm.create_training_job(TrainingJobName=name, HyperParameters={
                "seconds": str(seconds), "learning_rate": "0.01"}, **dd)

        def final(name, timeout=60):
            return base.wait(lambda: (lambda x: x if x["TrainingJobStatus"] in (
                "Completed", "Failed", "Stopped") else None)(
                sm.describe_training_job(TrainingJobName=name)), timeout=timeout)

        # the instance type's bounds and the contract's files
        job("limits", 0, itype="ml.c5.xlarge")
        r = final("limits")
        check("limits job completed", r and r["TrainingJobStatus"] == "Completed", r)
        art = r["ModelArtifacts"]["S3ModelArtifacts"][len("file://"):]
        with tarfile.open(art) as tf:
            report = tf.extractfile("report.txt").read().decode()
        lines = report.splitlines()
        check("threads bound, threads sleep when idle", lines[0] == "omp=4 cpus=4 wait=PASSIVE",
              lines[:1])
        if os.environ.get("KN_SANITIZE") == "1":
            print("memory bound not checked: a sanitizer build sets no RLIMIT_DATA")
        else:
            check("memory bound", str(8192 * 1024 * 1024) in lines[1], lines[1:2])
        hp = json.loads(lines[2])
        check("hyperparameters.json strings", hp == {"seconds": "0", "learning_rate": "0.01"}, hp)
        rc = json.loads(lines[3])
        check("resourceconfig.json", rc.get("current_host") == "algo-1" and
              rc.get("hosts") == ["algo-1"], rc)
        check("channel linked", lines[4:] == ["a.txt"], lines[4:])

        # the job's Environment chooses the wait policy
        job("spin", 0, env={"OMP_WAIT_POLICY": "ACTIVE"})
        r = final("spin")
        with tarfile.open(r["ModelArtifacts"]["S3ModelArtifacts"][len("file://"):]) as tf:
            first = tf.extractfile("report.txt").read().decode().splitlines()[0]
        check("Environment's OMP_WAIT_POLICY wins", first == "omp=2 cpus=2 wait=ACTIVE", first)

        # stop: SIGTERM ignored -> SIGKILL after the grace period
        job("stubborn", 600)
        base.wait(lambda: sm.describe_training_job(TrainingJobName="stubborn")["SecondaryStatus"]
                  == "Training")
        sm.stop_training_job(TrainingJobName="stubborn")
        st = sm.describe_training_job(TrainingJobName="stubborn")["TrainingJobStatus"]
        check("stopping first", st in ("Stopping", "Stopped"), st)
        r = final("stubborn", timeout=30)
        check("stopped after the grace period", r and r["TrainingJobStatus"] == "Stopped", r)
        check("SIGTERM reached the job", "got SIGTERM" in base.signed_get(
            f"{srv.url}/kennel/training-jobs/stubborn/logs").decode())

        # a tuning job's ResourceLimits.MaxRuntimeInSeconds (120 clock seconds =
        # 2 s here): its running trials are stopped, it completes, no new trial
        req = base.tuning("tune-budget", n=6, par=2, static={"sleep": "600", "epochs": "3"}, d=d)
        req["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxRuntimeInSeconds"] = 120
        st, out = base.raw_call(srv.url, "CreateHyperParameterTuningJob", req)
        check("tuning job with MaxRuntimeInSeconds created", st == 200, out)
        res = base.wait(base.raw_tuning_done(srv.url, "tune-budget"), timeout=30)
        kids = sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="tune-budget")["TrainingJobSummaries"]
        check("tuning budget: Completed, its two trials stopped, no third",
              res and res["HyperParameterTuningJobStatus"] == "Completed" and len(kids) == 2 and
              all(k["TrainingJobStatus"] == "Stopped" for k in kids),
              (res and res["HyperParameterTuningJobStatus"],
               [k["TrainingJobStatus"] for k in kids]))
        check("tuning budget: consumed runtime at least the limit", res and
              res.get("ConsumedResources", {}).get("RuntimeInSeconds", 0) >= 120,
              res and res.get("ConsumedResources"))

        # MaxRuntimeInSeconds (120 clock seconds = 2 s here)
        job("too-long", 600, max_runtime=120)
        r = final("too-long", timeout=30)
        check("max runtime", r and r["TrainingJobStatus"] == "Stopped" and
              r["SecondaryStatus"] == "MaxRuntimeExceeded", r and r["SecondaryStatus"])
    except Exception as e:
        import traceback
        traceback.print_exc()
        check("no exception", False, repr(e))
    finally:
        srv.stop()
        check("server exited cleanly", srv.proc.returncode == 0, srv.proc.returncode)
        if base.lib.failures:
            sys.stdout.write(open(f"{d}/server.err").read()[-5000:])
    print(f"{base.lib.checks - base.lib.failures} passed, {base.lib.failures} failed")
    return 1 if base.lib.failures else 0


if __name__ == "__main__":
    sys.exit(main())

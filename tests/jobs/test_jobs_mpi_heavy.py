#!/usr/bin/env python3
"""Multi-instance training jobs through boto3 against a real kennel server:
  - CreateTrainingJob with the built-in trainer and InstanceCount 2 runs
    mpirun with two ranks: Completed, one set of metric lines in the log (rank
    0's), metrics.json records 2 ranks, the model.tar.gz under
    <output>/<job>/output/ loads in kennel predict;
  - an entry point with InstanceCount 3 sees the SageMaker multi-instance
    contract on every rank: SM_HOSTS ["algo-1","algo-2","algo-3"], each rank
    its own SM_CURRENT_HOST, resourceconfig.json listing the hosts;
  - InstanceCount 65 is refused with the limit named.
"""
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_jobs_boto3 as base  # noqa: E402

lib = base.lib
check = lib.check
signed_get = base.signed_get
KN = lib.KN
AKID, SECRET = base.AKID, base.SECRET


def wait_done(sm, name, timeout=300):
    end = time.time() + timeout
    while time.time() < end:
        d = sm.describe_training_job(TrainingJobName=name)
        if d["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return d
        time.sleep(0.5)
    return sm.describe_training_job(TrainingJobName=name)


def job(d, name, count, hp=None, alg=None, env=None):
    out = dict(
        TrainingJobName=name,
        AlgorithmSpecification=alg or {
            "TrainingImage": "kennel", "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "Test Loss", "Regex": r"Testing Loss: ([0-9\.]+)"}]},
        RoleArn="arn:aws:iam::123456789012:role/kennel",
        InputDataConfig=[{"ChannelName": "training", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"file://{d}/data"}}}],
        OutputDataConfig={"S3OutputPath": f"file://{d}/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": count,
                        "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        HyperParameters=hp or {})
    if env:
        out["Environment"] = env
    return out


def run(d, url):
    from botocore.exceptions import ClientError
    sm = lib.client("sagemaker", url, AKID, SECRET)

    # the built-in trainer over 2 ranks
    hp = {"arch": "tiny", "image_size": "32", "head": "16", "epochs": "2", "batch_size": "7",
          "learning_rate": "0.05", "optimizer": "sgd", "seed": "7", "patience": "-1",
          "cache_dir": "none"}
    try:
        sm.create_training_job(**job(d, "mpi-two", 2, hp))
    except ClientError as e:
        msg = e.response["Error"]["Message"]
        if "built without MPI" in msg:
            check("without MPI the refusal says so", e.response["Error"]["Code"] ==
                  "ValidationException" and "libopenmpi-dev" in msg, msg)
            return "kennel was built without MPI: InstanceCount 2 refused with the reason"
        raise
    desc = wait_done(sm, "mpi-two")
    log = signed_get(f"{url}/kennel/training-jobs/mpi-two/logs").decode(errors="replace")
    check("2-instance job Completed", desc["TrainingJobStatus"] == "Completed",
          f"{desc.get('FailureReason')} {log[-1500:]}")
    check("InstanceCount kept", desc["ResourceConfig"]["InstanceCount"] == 2)
    check("log says 2 ranks", "data parallel: 2 ranks, global batch 7" in log, log[-800:])
    check("one Testing Loss line (rank 0 only)", log.count("Testing Loss: ") == 1, log[-800:])
    metrics = desc.get("FinalMetricDataList") or []
    check("the objective metric was read", any(m["MetricName"] == "Test Loss" for m in metrics),
          metrics)
    tgz = f"{d}/out/mpi-two/output/model.tar.gz"
    check("model.tar.gz stored", os.path.isfile(tgz), tgz)
    if os.path.isfile(tgz):
        with tarfile.open(tgz) as t:
            t.extractall(f"{d}/unpacked")
        m = json.load(open(f"{d}/unpacked/metrics.json"))
        check("metrics.json records 2 ranks", m.get("ranks") == 2, m.get("ranks"))
        img = sorted(os.path.join(r, f) for r, _, fs in os.walk(f"{d}/data/test") for f in fs)[0]
        p = subprocess.run([KN, "predict", "--model", tgz, "--topk", "1", img],
                           capture_output=True, text=True)
        check("kennel predict loads the 2-instance model", p.returncode == 0, p.stderr)

    # an entry point sees the multi-instance contract on each rank
    script = f"{d}/entry.sh"
    with open(script, "w") as f:
        f.write("#!/bin/sh\n"
                "echo \"$SM_CURRENT_HOST $OMPI_COMM_WORLD_RANK $SM_HOSTS\" >> \"$HOSTS_FILE\"\n"
                "cp \"$SM_INPUT_CONFIG_DIR/resourceconfig.json\" \"$SM_MODEL_DIR/rc-$SM_CURRENT_HOST.json\"\n")
    os.chmod(script, 0o755)
    sm.create_training_job(**job(d, "mpi-entry", 3, alg={
        "TrainingInputMode": "File", "ContainerEntrypoint": [script]},
        env={"HOSTS_FILE": f"{d}/hosts"}))
    desc = wait_done(sm, "mpi-entry")
    check("3-instance entry point Completed", desc["TrainingJobStatus"] == "Completed",
          desc.get("FailureReason"))
    lines = sorted(open(f"{d}/hosts").read().split("\n")) if os.path.exists(f"{d}/hosts") else []
    lines = [x for x in lines if x]
    check("three ranks ran", len(lines) == 3, lines)
    check("each rank its own SM_CURRENT_HOST",
          [x.split()[0] for x in lines] == ["algo-1", "algo-2", "algo-3"], lines)
    check("ranks 0..2", sorted(x.split()[1] for x in lines) == ["0", "1", "2"], lines)
    check("SM_HOSTS lists all three",
          all(json.loads(x.split(" ", 2)[2]) == ["algo-1", "algo-2", "algo-3"] for x in lines),
          lines)
    tgz = f"{d}/out/mpi-entry/output/model.tar.gz"
    if check("entry model stored", os.path.isfile(tgz), tgz):
        with tarfile.open(tgz) as t:
            rc = json.load(t.extractfile("rc-algo-2.json"))
        check("resourceconfig.json lists the hosts", rc["hosts"] == ["algo-1", "algo-2", "algo-3"],
              rc)

    # over the limit
    try:
        sm.create_training_job(**job(d, "mpi-many", 65, hp))
        check("InstanceCount 65 refused", False)
    except ClientError as e:
        check("InstanceCount 65 refused", e.response["Error"]["Code"] == "ValidationException"
              and "at most 64" in e.response["Error"]["Message"], e.response["Error"])


def main():
    tmp, status = lib.begin(AKID, SECRET)
    if not tmp:
        return status
    if not shutil.which("mpirun"):
        print("skip: mpirun is not installed (apt-get install openmpi-bin)")
        return 77
    d = tmp.name
    skipped = None
    subprocess.run([KN, "dataset", "synth", f"{d}/data", "--classes", "3", "--per-class", "8",
                    "--seed", "5"], check=True, stdout=subprocess.DEVNULL)
    srv = lib.Server(f"{d}/srv", f"{d}/ready", f"{d}/server.err").start()
    try:
        skipped = run(d, srv.url)
    except Exception as e:
        import traceback
        traceback.print_exc()
        check("no exception", False, repr(e))
    finally:
        check("server exited cleanly", srv.stop() == 0)
    status = lib.done(f"{d}/server.err")
    if status == 0 and skipped:
        print(f"skip: {skipped}")
        return 77
    return status


if __name__ == "__main__":
    sys.exit(main())

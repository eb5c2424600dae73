#!/usr/bin/env python3
"""Training and tuning jobs through boto3 against a real kennel server, with
a fast stand-in training script (standin_trainer.py) as the entry point:
  - a training job runs under the contract: Completed with the secondary
    statuses AWS reports, model.tar.gz under <output>/<job>/output/, the
    metric series (FinalMetricDataList), its log over /kennel/.../logs;
  - StopTrainingJob: Stopping -> Stopped;
  - bad input gets AWS-shaped errors: a name over 63 (training) / 32
    (tuning) characters, InstanceCount 65, a regex that does not compile, an
    entry point that is not executable, min >= max, log scale with min <= 0,
    an empty categorical, an objective not among the metric definitions, a
    missing training job (ValidationException) and tuning job
    (ResourceNotFound);
  - a tuning job whose children sometimes fail keeps going; BestTrainingJob
    is the child with the lowest objective; child names <job>-NNN-<8 hex>;
    ListTrainingJobsForHyperParameterTuningJob sorted by objective;
  - an objective that never appears: Completed, no BestTrainingJob, every
    objective Failed;
  - warm start: the parent's trials inform the child tuning job and
    OverallBestTrainingJob covers both;
  - faults: kill -9 of a running child -> Failed with a reason and the
    tuning job carries on; kill -9 of the server mid-tuning, restart -> the
    tuning job resumes: finished trials are not run again, the interrupted
    one is, and no record is lost.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kn_testlib as lib  # noqa: E402

KN = lib.KN
HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN = os.path.join(HERE, "standin_trainer.py")
AKID, SECRET = "AKIDEXAMPLE", "kennel-test-secret"
check = lib.check


def Server(d, extra=()):
    """The jobs tests' server: data, ready file and log under d."""
    return lib.Server(f"{d}/data", f"{d}/ready", f"{d}/server.err", extra)


def wait(pred, timeout=60, step=0.1):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def definition(d, hp=None, metrics=None, entry=None, tuning=False):
    alg = {"TrainingInputMode": "File"}
    if entry or not tuning:
        alg["ContainerEntrypoint"] = entry or ["/usr/bin/python3", STANDIN]
    else:  # the tuning API has no entry point: the image is the executable
        alg["TrainingImage"] = STANDIN
    out = {
        "AlgorithmSpecification": dict(alg, **{
            "MetricDefinitions": metrics if metrics is not None else [
                {"Name": "Test Loss", "Regex": r"Testing Loss: ([0-9\.]+)"},
                {"Name": "Valid Loss", "Regex": r"Valid Loss: ([0-9\.]+)"}]}),
        "RoleArn": "arn:aws:iam::123456789012:role/kennel",
        "InputDataConfig": [{"ChannelName": "training", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"file://{d}/input"}}}],
        "OutputDataConfig": {"S3OutputPath": f"file://{d}/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                           "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    if not tuning:
        out["Environment"] = {"RUNS_FILE": f"{d}/runs"}
    return out


def tuning(name, strategy="Random", n=4, par=2, ranges=None, static=None, metrics=None,
           metric="Test Loss", warm=None, d=None):
    td = definition(d, metrics=metrics, tuning=True)
    td["StaticHyperParameters"] = dict(static or {"sleep": "0.1"}, runs_file=f"{d}/runs")
    kw = dict(HyperParameterTuningJobName=name, HyperParameterTuningJobConfig={
        "Strategy": strategy,
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": metric},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": n, "MaxParallelTrainingJobs": par},
        "ParameterRanges": ranges or {"ContinuousParameterRanges": [
            {"Name": "learning_rate", "MinValue": "0.0001", "MaxValue": "1",
             "ScalingType": "Logarithmic"}]},
        "TrainingJobEarlyStoppingType": "Off"}, TrainingJobDefinition=td)
    if warm:
        kw["WarmStartConfig"] = {"ParentHyperParameterTuningJobs": [
            {"HyperParameterTuningJobName": w} for w in warm],
            "WarmStartType": "IdenticalDataAndAlgorithm"}
    return kw


def signed_get(url):
    """A GET on kennel's own routes, SigV4-signed as the test's clients are."""
    status, body = lib.signed(url, "GET", "", "sagemaker", AKID, SECRET)
    if status != 200:
        raise RuntimeError(f"GET {url}: HTTP {status}: {body[:200]!r}")
    return body


def error_of(fn, **kw):
    from botocore.exceptions import ClientError
    try:
        fn(**kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"]["Message"]
    return None, None


def raw_call(url, op, body):
    """A SageMaker JSON 1.1 call signed here, for members Debian's botocore
    does not know (ResourceLimits.MaxRuntimeInSeconds, BestObjectiveNotImproving,
    ConsumedResources, TuningJobCompletionDetails): (status, decoded body)."""
    status, out = lib.signed(url, "POST", "/", "sagemaker", AKID, SECRET,
                             json.dumps(body).encode(),
                             {"X-Amz-Target": f"SageMaker.{op}",
                              "Content-Type": "application/x-amz-json-1.1"})
    return status, json.loads(out or b"{}")


def raw_tuning_done(url, name):
    def f():
        st, r = raw_call(url, "DescribeHyperParameterTuningJob",
                         {"HyperParameterTuningJobName": name})
        return r if r.get("HyperParameterTuningJobStatus") in ("Completed", "Stopped",
                                                                "Failed") else None
    return f


def tuning_done(sm, name):
    def f():
        r = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        return r if r["HyperParameterTuningJobStatus"] in ("Completed", "Stopped", "Failed") else None
    return f


def run(d, srv, sm, sm_raw):
    os.makedirs(f"{d}/input", exist_ok=True)
    open(f"{d}/input/data.txt", "w").write("x\n")

    # ---- one training job
    job = "standin-one"
    r = sm.create_training_job(TrainingJobName=job, HyperParameters={"learning_rate": "0.01",
                                                                     "sleep": "0.05"},
                               **definition(d))
    check("create arn", r["TrainingJobArn"].endswith(":training-job/standin-one"), r)
    desc = wait(lambda: (lambda x: x if x["TrainingJobStatus"] != "InProgress" else None)(
        sm.describe_training_job(TrainingJobName=job)))
    check("job completed", desc and desc["TrainingJobStatus"] == "Completed", desc)
    sec = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    check("secondary statuses", sec == ["Starting", "Downloading", "Training", "Uploading",
                                        "Completed"], sec)
    art = desc["ModelArtifacts"]["S3ModelArtifacts"]
    check("artifact path", art == f"file://{d}/out/{job}/output/model.tar.gz", art)
    with tarfile.open(art[len("file://"):]) as tf:
        check("model in tar", "weights.txt" in tf.getnames(), tf.getnames())
    fm = {m["MetricName"]: m["Value"] for m in desc.get("FinalMetricDataList", [])}
    check("final metrics", abs(fm.get("Test Loss", -1) - 0.1) < 1e-4 and "Valid Loss" in fm, fm)
    logs = signed_get(f"{srv.url}/kennel/training-jobs/{job}/logs").decode()
    check("log kept", "Testing Loss: 0.100000" in logs, logs[-300:])
    series = json.loads(signed_get(f"{srv.url}/kennel/training-jobs/{job}/metrics"))
    check("series", len(series.get("Valid Loss", [])) == 3, series)
    lst = sm.list_training_jobs(NameContains="standin-one")["TrainingJobSummaries"]
    check("list", [x["TrainingJobName"] for x in lst] == [job], lst)
    code, msg = error_of(sm.create_training_job, TrainingJobName=job, **definition(d))
    check("duplicate name", code == "ResourceInUse", (code, msg))

    # ---- failure reason from output/failure
    sm.create_training_job(TrainingJobName="standin-fail", HyperParameters={"fail": "1"},
                           **definition(d))
    desc = wait(lambda: (lambda x: x if x["TrainingJobStatus"] != "InProgress" else None)(
        sm.describe_training_job(TrainingJobName="standin-fail")))
    check("failed job", desc["TrainingJobStatus"] == "Failed" and
          "diverged (stand-in failure)" in desc.get("FailureReason", ""), desc.get("FailureReason"))

    # ---- stop
    sm.create_training_job(TrainingJobName="standin-stop",
                           HyperParameters={"sleep": "30", "epochs": "10"}, **definition(d))
    wait(lambda: sm.describe_training_job(TrainingJobName="standin-stop")["SecondaryStatus"]
         == "Training")
    sm.stop_training_job(TrainingJobName="standin-stop")
    desc = wait(lambda: (lambda x: x if x["TrainingJobStatus"] == "Stopped" else None)(
        sm.describe_training_job(TrainingJobName="standin-stop")), timeout=30)
    check("stopped", desc is not None and desc["SecondaryStatus"] == "Stopped", desc)
    code, _ = error_of(sm.stop_training_job, TrainingJobName="standin-stop")
    check("stop a stopped job", code == "ValidationException", code)

    # ---- bad input
    bad = []
    code, msg = error_of(sm.create_training_job, TrainingJobName="x" * 64, **definition(d))
    bad.append(("long name", code, msg, "length less than or equal to 63"))
    dd = definition(d)
    dd["ResourceConfig"]["InstanceCount"] = 65
    code, msg = error_of(sm.create_training_job, TrainingJobName="many", **dd)
    bad.append(("instance count", code, msg, "at most 64 instances"))
    code, msg = error_of(sm.create_training_job, TrainingJobName="badre",
                         **definition(d, metrics=[{"Name": "m", "Regex": "loss: ([0-9"}]))
    bad.append(("regex", code, msg, "MetricDefinitions"))
    os.makedirs(f"{d}/bin", exist_ok=True)
    open(f"{d}/bin/train.sh", "w").write("#!/bin/sh\necho hi\n")
    code, msg = error_of(sm.create_training_job, TrainingJobName="noexec",
                         **definition(d, entry=[f"{d}/bin/train.sh"]))
    bad.append(("not executable", code, msg, "not an executable"))
    code, msg = error_of(sm.describe_training_job, TrainingJobName="nope")
    bad.append(("missing job", code, msg, "Could not find training job"))
    code, msg = error_of(sm.describe_hyper_parameter_tuning_job, HyperParameterTuningJobName="nope")
    bad.append(("missing tuning job", code, msg, "can't find a tuning job"))
    code, msg = error_of(sm.create_hyper_parameter_tuning_job, **tuning("t" * 33, d=d))
    bad.append(("long tuning name", code, msg, "length less than or equal to 32"))
    for nm, rng, want in [
        ("minmax", {"ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "1",
                                                   "MaxValue": "0.1"}]}, "learning_rate"),
        ("logzero", {"ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0",
                                                    "MaxValue": "0.1",
                                                    "ScalingType": "Logarithmic"}]},
         "learning_rate"),
        ("emptycat", {"CategoricalParameterRanges": [{"Name": "batch_size", "Values": []}]},
         "batch_size")]:
        # without botocore's own checks, so the server's answer is what is seen
        code, msg = error_of(sm_raw.create_hyper_parameter_tuning_job,
                             **tuning("bad-" + nm, ranges=rng, d=d))
        bad.append((nm, code, msg, want))
    code, msg = error_of(sm.create_hyper_parameter_tuning_job,
                         **tuning("bad-objective", metric="Nope", d=d))
    bad.append(("objective not defined", code, msg, "MetricDefinitions"))
    for nm, code, msg, want in bad:
        ok_code = code in ("ValidationException", "ResourceNotFound")
        check(f"bad input: {nm}", ok_code and want in (msg or ""), (code, msg))
    check("missing tuning job is ResourceNotFound",
          [b for b in bad if b[0] == "missing tuning job"][0][1] == "ResourceNotFound")

    # ---- tuning with failing children
    sm.create_hyper_parameter_tuning_job(**tuning(
        "tune-a", n=6, par=2, static={"sleep": "0.05", "fail_above": "0.3"}, d=d))
    res = wait(tuning_done(sm, "tune-a"), timeout=120)
    check("tuning completed", res and res["HyperParameterTuningJobStatus"] == "Completed", res)
    kids = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="tune-a", SortBy="FinalObjectiveMetricValue",
        SortOrder="Ascending")["TrainingJobSummaries"]
    check("6 children", len(kids) == 6, len(kids))
    check("child names", all(re.fullmatch(r"tune-a-00[1-6]-[0-9a-f]{8}", k["TrainingJobName"])
                             for k in kids), [k["TrainingJobName"] for k in kids])
    ok = [k for k in kids if k["ObjectiveStatus"] == "Succeeded"]
    vals = [k["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for k in ok]
    check("sorted by objective", vals == sorted(vals), vals)
    best = res.get("BestTrainingJob", {})
    check("best is the minimum", ok and best.get("TrainingJobName") == ok[0]["TrainingJobName"],
          (best, ok[:1]))
    cnt = res["TrainingJobStatusCounters"]
    check("counters", cnt["Completed"] + cnt["NonRetryableError"] == 6 and
          res["ObjectiveStatusCounters"]["Succeeded"] == len(ok), res["TrainingJobStatusCounters"])
    child = sm.describe_training_job(TrainingJobName=kids[0]["TrainingJobName"])
    check("child hyperparameters", child["HyperParameters"].get("_tuning_objective_metric") ==
          '"Test Loss"' and "learning_rate" in child["HyperParameters"] and
          child.get("TuningJobArn", "").endswith("/tune-a"), child["HyperParameters"])

    # ---- objective never found
    sm.create_hyper_parameter_tuning_job(**tuning(
        "tune-silent", n=2, par=2, static={"sleep": "0.05", "silent": "1"}, d=d))
    res = wait(tuning_done(sm, "tune-silent"), timeout=60)
    check("silent completed", res and res["HyperParameterTuningJobStatus"] == "Completed", res)
    check("no best without objective", res and "BestTrainingJob" not in res and
          res["ObjectiveStatusCounters"]["Failed"] == 2, res and res["ObjectiveStatusCounters"])

    # ---- warm start
    sm.create_hyper_parameter_tuning_job(**tuning("tune-warm", strategy="Bayesian", n=2, par=1,
                                                  static={"sleep": "0.05"}, warm=["tune-a"], d=d))
    res = wait(tuning_done(sm, "tune-warm"), timeout=60)
    check("warm completed", res and res["HyperParameterTuningJobStatus"] == "Completed", res)
    ob = res.get("OverallBestTrainingJob", {}).get("FinalHyperParameterTuningJobObjectiveMetric",
                                                    {}).get("Value")
    own = res.get("BestTrainingJob", {}).get("FinalHyperParameterTuningJobObjectiveMetric",
                                             {}).get("Value")
    check("overall best covers the parent", ob is not None and own is not None and
          ob <= min(own, vals[0]) + 1e-12, (ob, own, vals[:1]))
    check("warm start spends its own budget only",
          res["TrainingJobStatusCounters"]["Completed"] == 2, res["TrainingJobStatusCounters"])
    lst = sm.list_hyper_parameter_tuning_jobs(SortBy="Name", SortOrder="Ascending")
    check("list tuning jobs", [x["HyperParameterTuningJobName"] for x in
                               lst["HyperParameterTuningJobSummaries"]] ==
          ["tune-a", "tune-silent", "tune-warm"], lst["HyperParameterTuningJobSummaries"])

    # ---- kill -9 of a child: Failed with a reason, tuning continues
    sm.create_hyper_parameter_tuning_job(**tuning("tune-kill", n=3, par=1,
                                                  static={"sleep": "1.0", "epochs": "3"}, d=d))
    first = wait(lambda: [k for k in sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="tune-kill")["TrainingJobSummaries"]
        if k["TrainingJobStatus"] == "InProgress"], timeout=30)
    victim = first[0]["TrainingJobName"]
    wait(lambda: sm.describe_training_job(TrainingJobName=victim)["SecondaryStatus"] == "Training")
    time.sleep(0.5)
    pids = subprocess.run(["pgrep", "-f", STANDIN], capture_output=True, text=True).stdout.split()
    killed = 0
    for p in pids:
        try:
            env = open(f"/proc/{p}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if f"TRAINING_JOB_NAME={victim}".encode() in env:
            os.kill(int(p), signal.SIGKILL)
            killed += 1
    check("found the child process", killed == 1, pids)
    res = wait(tuning_done(sm, "tune-kill"), timeout=90)
    v = sm.describe_training_job(TrainingJobName=victim)
    check("killed child failed", v["TrainingJobStatus"] == "Failed" and
          "signal 9" in v.get("FailureReason", ""), v.get("FailureReason"))
    check("tuning carried on", res and res["HyperParameterTuningJobStatus"] == "Completed" and
          res["TrainingJobStatusCounters"]["Completed"] == 2 and
          res["TrainingJobStatusCounters"]["NonRetryableError"] == 1,
          res and res["TrainingJobStatusCounters"])

    # ---- kill -9 of the server mid-tuning, restart: resume
    if os.path.exists(f"{d}/runs"):
        os.unlink(f"{d}/runs")
    sm.create_hyper_parameter_tuning_job(**tuning("tune-restart", n=4, par=1,
                                                  static={"sleep": "0.7", "epochs": "3"}, d=d))
    def one_done_one_running():
        kids = sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="tune-restart")["TrainingJobSummaries"]
        done = [k for k in kids if k["TrainingJobStatus"] == "Completed"]
        running = [k["TrainingJobName"] for k in kids if k["TrainingJobStatus"] == "InProgress"]
        started = open(f"{d}/runs").read().split() if os.path.exists(f"{d}/runs") else []
        return done and running and running[0] in started
    check("one trial done, the next running", wait(one_done_one_running, timeout=60, step=0.05))
    before = {k["TrainingJobName"]: k for k in sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="tune-restart")["TrainingJobSummaries"]}
    srv.kill9()
    time.sleep(0.3)
    srv.start()
    return srv.url, before


def after_restart(d, sm, before):
    res = wait(tuning_done(sm, "tune-restart"), timeout=120)
    check("resumed tuning completed", res and res["HyperParameterTuningJobStatus"] == "Completed",
          res)
    kids = {k["TrainingJobName"]: k for k in sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="tune-restart", MaxResults=100)["TrainingJobSummaries"]}
    check("4 children, none lost", len(kids) == 4 and set(before) <= set(kids), list(kids))
    runs = open(f"{d}/runs").read().split()
    for name, k in before.items():
        n = runs.count(name)
        if k["TrainingJobStatus"] == "Completed":
            check(f"finished trial {name} not rerun", n == 1 and
                  kids[name]["TrainingEndTime"] == k["TrainingEndTime"], (n, kids[name]))
        else:
            check(f"interrupted trial {name} rerun", n == 2 and
                  kids[name]["TrainingJobStatus"] == "Completed", (n, kids[name]))
    check("every trial ran", all(runs.count(n) >= 1 for n in kids), runs)
    check("counters after resume", res["TrainingJobStatusCounters"]["Completed"] == 4,
          res["TrainingJobStatusCounters"])
    # the other jobs are all still there
    names = [x["TrainingJobName"] for x in
             sm.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]]
    check("no record lost", "standin-one" in names and len([n for n in names if
                                                             n.startswith("tune-a-")]) == 6,
          len(names))
    d1 = sm.describe_training_job(TrainingJobName="standin-one")
    check("lone job kept", d1["TrainingJobStatus"] == "Completed", d1["TrainingJobStatus"])


def main():
    if not KN:
        print("KN_BIN not set")
        return 1
    try:
        import boto3
    except ImportError as e:
        print(f"skip: {e} (needs python3-boto3)")
        return 77
    lib.client_env(AKID, SECRET)
    tmp = tempfile.TemporaryDirectory()
    d = tmp.name
    srv = Server(d)
    srv.start()
    try:
        sm = lib.client("sagemaker", srv.url, AKID, SECRET)
        import botocore.config
        sm_raw = lib.client("sagemaker", srv.url, AKID, SECRET,
                            config=botocore.config.Config(parameter_validation=False))
        url, before = run(d, srv, sm, sm_raw)
        sm = lib.client("sagemaker", url, AKID, SECRET)
        after_restart(d, sm, before)
    except Exception as e:
        import traceback
        traceback.print_exc()
        check("no exception", False, repr(e))
    finally:
        srv.stop()
        check("server exited cleanly (no sanitizer report)", srv.proc.returncode == 0,
              srv.proc.returncode)
    return lib.done(f"{d}/server.err")


if __name__ == "__main__":
    sys.exit(main())

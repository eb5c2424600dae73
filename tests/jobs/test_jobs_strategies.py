#!/usr/bin/env python3
"""Tuning strategies end to end through boto3 on a real kennel server, with
the stand-in trainer (standin_trainer.py; its objective depends on
learning_rate only, best at 0.01):
  - Grid over a categorical learning_rate without MaxNumberOfTrainingJobs:
    one child per value, each value exactly once;
  - Hyperband (MinResource 1, MaxResource 9): children train for 1, 3 or 9
    epochs (the `epochs` hyperparameter is the trial's resource), fewer
    epochs in total than 9 per trial, and a configuration promoted to a
    higher rung is among the best of the rung below;
  - TrainingJobEarlyStoppingType Auto on a per-epoch objective: weak trials
    are stopped early (Stopped, objective kept) and the best job is a trial
    that ran to the end.
  - completion criteria: TargetObjectiveMetricValue ends the tuning job
    (Completed) once the best objective reaches it; BestObjectiveNotImproving
    once that many trials in a row did not improve the best by more than 1 %,
    with TuningJobCompletionDetails and ConsumedResources in Describe; bad
    criteria and a MaxRuntimeInSeconds under 120 are refused.
(RandomSeed is newer than Debian's botocore, so the order is made
deterministic with Grid rather than a seed.)
The strategy decisions themselves (Bayesian vs Random on average over seeds,
Hyperband's budget, Grid coverage) are tests/tune/test_tuner.c."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_jobs_boto3 as base  # noqa: E402


def main():
    if not base.KN:
        print("KN_BIN not set")
        return 1
    try:
        import boto3
    except ImportError as e:
        print(f"skip: {e} (needs python3-boto3)")
        return 77
    import tempfile
    base.lib.client_env(base.AKID, base.SECRET)
    tmp = tempfile.TemporaryDirectory()
    d = tmp.name
    os.makedirs(f"{d}/input")
    srv = base.Server(d)
    srv.start()
    check = base.check
    try:
        sm = base.lib.client("sagemaker", srv.url, base.AKID, base.SECRET)

        def kids_of(name):
            return sm.list_training_jobs_for_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=name, MaxResults=100)["TrainingJobSummaries"]

        # Grid
        req = base.tuning("grid", strategy="Grid", n=3, par=2, static={"sleep": "0.02"},
                          ranges={"CategoricalParameterRanges": [{
                              "Name": "learning_rate", "Values": ["0.001", "0.01", "0.1"]}]},
                          d=d)
        del req["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"]
        sm.create_hyper_parameter_tuning_job(**req)
        res = base.wait(base.tuning_done(sm, "grid"), timeout=60)
        vals = sorted(k["TunedHyperParameters"]["learning_rate"] for k in kids_of("grid"))
        check("grid covers each value once", vals == ["0.001", "0.01", "0.1"], vals)
        check("grid best", res["BestTrainingJob"]["TunedHyperParameters"]["learning_rate"] ==
              "0.01", res.get("BestTrainingJob"))

        # Hyperband
        req = base.tuning("hb", strategy="Hyperband", n=9, par=3, static={"sleep": "0.01"}, d=d)
        req["HyperParameterTuningJobConfig"]["StrategyConfig"] = {
            "HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 9}}
        sm.create_hyper_parameter_tuning_job(**req)
        res = base.wait(base.tuning_done(sm, "hb"), timeout=120)
        check("hyperband completed", res and res["HyperParameterTuningJobStatus"] == "Completed",
              res)
        kids = kids_of("hb")
        epochs = {}
        for k in kids:
            hp = sm.describe_training_job(TrainingJobName=k["TrainingJobName"])["HyperParameters"]
            epochs[k["TrainingJobName"]] = int(hp["epochs"])
        ev = sorted(epochs.values())
        check("hyperband rungs", set(ev) <= {1, 3, 9} and ev[0] == 1 and ev[-1] > 1, ev)
        check("hyperband spends less than full budget", sum(ev) < 9 * len(ev), ev)
        rung0 = sorted((k["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
                        k["TunedHyperParameters"]["learning_rate"]) for k in kids
                       if epochs[k["TrainingJobName"]] == 1 and k["ObjectiveStatus"] == "Succeeded")
        promoted = {k["TunedHyperParameters"]["learning_rate"] for k in kids
                    if epochs[k["TrainingJobName"]] == 3}
        check("the best of the first rung is promoted", rung0 and rung0[0][1] in promoted,
              (promoted, rung0))
        code, msg = base.error_of(sm.create_hyper_parameter_tuning_job, **dict(
            req, HyperParameterTuningJobName="hb-auto", HyperParameterTuningJobConfig=dict(
                req["HyperParameterTuningJobConfig"], TrainingJobEarlyStoppingType="Auto")))
        check("hyperband refuses early stopping Auto", code == "ValidationException" and
              "Hyperband" in msg, (code, msg))

        # early stopping Auto (median rule) on the per-epoch Valid Loss, over a
        # grid in a known order: three good trials, then three poor ones
        req = base.tuning("es", strategy="Grid", n=6, par=1, metric="Valid Loss",
                          static={"sleep": "0.25", "epochs": "6"},
                          ranges={"CategoricalParameterRanges": [{
                              "Name": "learning_rate",
                              "Values": ["0.01", "0.02", "0.005", "0.3", "0.0002", "1"]}]}, d=d)
        req["HyperParameterTuningJobConfig"]["TrainingJobEarlyStoppingType"] = "Auto"
        sm.create_hyper_parameter_tuning_job(**req)
        res = base.wait(base.tuning_done(sm, "es"), timeout=180)
        check("early stopping job completed", res and
              res["HyperParameterTuningJobStatus"] == "Completed", res)
        kids = kids_of("es")
        stopped = [k for k in kids if k["TrainingJobStatus"] == "Stopped"]
        check("the poor trials stopped early", sorted(
            k["TunedHyperParameters"]["learning_rate"] for k in stopped) == ["0.0002", "0.3", "1"],
              [(k["TrainingJobStatus"], k["TunedHyperParameters"]) for k in kids])
        check("stopped trials keep their objective", all(
            k["ObjectiveStatus"] == "Succeeded" for k in stopped), stopped)
        best = res["BestTrainingJob"]
        check("best ran to the end", best["TrainingJobStatus"] == "Completed", best)

        # completion criteria, over grids in a known order (MaxParallel 1):
        # TargetObjectiveMetricValue 0.2 is reached by the second trial (0.01: 0.1)
        req = base.tuning("target", strategy="Grid", n=5, par=1, static={"sleep": "0.02"},
                          ranges={"CategoricalParameterRanges": [{
                              "Name": "learning_rate", "Values": ["0.3", "0.01", "0.001", "0.1",
                                                                  "1"]}]}, d=d)
        req["HyperParameterTuningJobConfig"]["TuningJobCompletionCriteria"] = {
            "TargetObjectiveMetricValue": 0.2}
        sm.create_hyper_parameter_tuning_job(**req)
        res = base.wait(base.tuning_done(sm, "target"), timeout=60)
        kids = kids_of("target")
        check("target reached: Completed after two trials",
              res and res["HyperParameterTuningJobStatus"] == "Completed" and len(kids) == 2,
              (res and res["HyperParameterTuningJobStatus"], [k["TunedHyperParameters"] for k in kids]))
        check("target reached: the best is the trial that reached it",
              res["BestTrainingJob"]["TunedHyperParameters"]["learning_rate"] == "0.01",
              res.get("BestTrainingJob"))

        # BestObjectiveNotImproving 3: the first trial is the best, the next
        # three do not improve it, the tuning job completes after four
        # (Debian's botocore lacks the member: the request is signed here)
        req = base.tuning("plateau", strategy="Grid", n=6, par=1, static={"sleep": "0.02"},
                          ranges={"CategoricalParameterRanges": [{
                              "Name": "learning_rate",
                              "Values": ["0.01", "0.3", "1", "0.0002", "0.02", "0.005"]}]}, d=d)
        req["HyperParameterTuningJobConfig"]["TuningJobCompletionCriteria"] = {
            "BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 3}}
        st, out = base.raw_call(srv.url, "CreateHyperParameterTuningJob", req)
        check("not-improving criterion accepted", st == 200, out)
        res = base.wait(base.raw_tuning_done(srv.url, "plateau"), timeout=60)
        kids = kids_of("plateau")
        check("not improving: Completed after four trials",
              res and res["HyperParameterTuningJobStatus"] == "Completed" and len(kids) == 4,
              (res and res["HyperParameterTuningJobStatus"], len(kids)))
        check("not improving: the count is reported", res and res.get(
            "TuningJobCompletionDetails") == {"NumberOfTrainingJobsObjectiveNotImproving": 3},
              res and res.get("TuningJobCompletionDetails"))
        check("consumed runtime reported", res and isinstance(
            res.get("ConsumedResources", {}).get("RuntimeInSeconds"), int), res)
        for bad, what in (({"BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 2}},
                           "maxNumberOfTrainingJobsNotImproving"),
                          ({"ConvergenceDetected": {"CompleteOnConvergence": "Sometimes"}},
                           "completeOnConvergence")):
            req["HyperParameterTuningJobName"] = "bad-criteria"
            req["HyperParameterTuningJobConfig"]["TuningJobCompletionCriteria"] = bad
            st, out = base.raw_call(srv.url, "CreateHyperParameterTuningJob", req)
            check(f"bad {what} refused", st == 400 and "ValidationException" in str(out)
                  and what in out.get("message", out.get("Message", "")), (st, out))
        req["HyperParameterTuningJobConfig"]["TuningJobCompletionCriteria"] = {}
        req["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxRuntimeInSeconds"] = 60
        st, out = base.raw_call(srv.url, "CreateHyperParameterTuningJob", req)
        check("MaxRuntimeInSeconds under 120 refused", st == 400 and
              "maxRuntimeInSeconds" in out.get("message", out.get("Message", "")), (st, out))
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

#!/usr/bin/python3
"""A fast stand-in for a training script under the SageMaker training
contract, for the jobs tests: reads SM_HPS, prints one "Valid Loss" line per
epoch and a final "Testing Loss" line (a smooth function of learning_rate
with its optimum at 0.01), writes a model file to SM_MODEL_DIR and records
its run in the runs_file hyperparameter (or $RUNS_FILE). Hyperparameters: learning_rate, epochs (default 3),
sleep (seconds per epoch, default 0.2), fail ("1": write output/failure and
exit 1), silent ("1": never print the objective)."""
import json
import math
import os
import sys
import time

hp = json.loads(os.environ.get("SM_HPS", "{}"))
name = os.environ.get("TRAINING_JOB_NAME", "?")
runs = hp.get("runs_file") or os.environ.get("RUNS_FILE")
if runs:
    with open(runs, "a") as f:
        f.write(name + "\n")
lr = float(hp.get("learning_rate", "0.01"))
epochs = int(hp.get("epochs", "3"))
pause = float(hp.get("sleep", "0.2"))
loss = (math.log10(lr) + 2.0) ** 2 + 0.1
if hp.get("fail") == "1" or (hp.get("fail_above") and lr > float(hp["fail_above"])):
    out = os.path.join(os.environ["SM_OUTPUT_DIR"], "failure")
    with open(out, "w") as f:
        f.write(f"learning_rate {lr} diverged (stand-in failure)")
    print("diverged", flush=True)
    sys.exit(1)
for e in range(1, epochs + 1):
    time.sleep(pause)
    print(f"epoch {e}: Valid Loss: {loss + 1.0 / e:.6f}", flush=True)
if hp.get("silent") != "1":
    print(f"Testing Loss: {loss:.6f}", flush=True)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "weights.txt"), "w") as f:
    f.write(f"{lr}\n")

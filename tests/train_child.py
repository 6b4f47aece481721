"""A training run in its own process, for the SIGKILL resume test: `python train_child.py WORKDIR TOKENIZER`.

Prints the TrainResult as JSON. Each step's eval sleeps a little so that the parent can kill it mid-run.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from restreact.models import Tokenizer  # noqa: E402
from restreact.train import train  # noqa: E402
from train_util import mixed_examples, one_device_mesh, resume_config, tiny_model  # noqa: E402


def main():
  workdir, tokenizer = sys.argv[1], Tokenizer(sys.argv[2])
  delay = float(os.environ.get("TRAIN_CHILD_DELAY", "0"))

  def slow_eval(model):
    time.sleep(delay)
    return 0.0

  result = train(tiny_model(), tokenizer, mixed_examples(), resume_config(), workdir, mesh=one_device_mesh(),
                 eval_fn=slow_eval)
  print(json.dumps({"final_loss": result.final_loss, "steps": result.steps}))


if __name__ == "__main__":
  main()

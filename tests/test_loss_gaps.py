"""dev/replay/loss_gaps.py on synthetic converge logs with known gaps."""
import json
import os
import unittest

from script_case import ScratchCase, script_runner

run = script_runner("dev", "replay", "loss_gaps.py")


class LossGaps(ScratchCase):
    def write(self, rank, gaps):
        """A log of a static rank whose val loss is 2 * (1 + gap / 100) every 25 steps, with
        training steps between that carry no val loss."""
        with open(os.path.join(self.tmp.name, f"g-powersgd-{rank}.jsonl"), "w") as f:
            for i, g in enumerate(gaps):
                step = 25 * (i + 1)
                f.write(json.dumps({"step": step - 1, "val_loss": None}) + "\n")
                f.write(json.dumps({"step": step, "val_loss": 2.0 * (1 + g / 100)}) + "\n")

    def test_gaps(self):
        self.write(32, [0] * 8)
        self.write(8, [0, 0, 0, 0, 1, 2, 1, 2])
        out = run("--dir", self.tmp.name, "g:8:32")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("rank 8 against 32", out.stdout)
        self.assertIn("25:+0.00 50:+0.00 75:+0.00 100:+0.00 125:+1.00 150:+2.00 175:+1.00 "
                      "200:+2.00", out.stdout)
        # second half 1, 2, 1, 2: differences 1, -1, 1, sd sqrt(4/3), over sqrt 2: 0.82; only
        # the last gap is above 1.63
        self.assertIn("mean by thirds of the run +0.00 +0.33 +1.67; jitter 0.82; "
                      "above 2x jitter to the end from step 200 of 200", out.stdout)

    def test_never_settles(self):
        self.write(32, [0] * 6)
        self.write(8, [3, 3, 3, 0, 1, 0])
        out = run("--dir", self.tmp.name, "g:8:32")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("from step - (never) of 150", out.stdout)

    def test_bad_input(self):
        self.write(32, [0] * 8)
        out = run("--dir", self.tmp.name, "g:8:32")  # no rank-8 log
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("g-powersgd-8.jsonl", out.stderr)
        out = run("--dir", self.tmp.name, "g:eight:32")
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("expected GROUP:LOW:HIGH", out.stderr)
        self.write(8, [0] * 3)
        out = run("--dir", self.tmp.name, "g:8:32")
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("fewer than 6 evaluations", out.stderr)


if __name__ == "__main__":
    unittest.main()

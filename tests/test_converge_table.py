"""scripts/converge_table.py on synthetic logs: the time to target, and which static rank a
compressed run's bytes are weighed against (the cheapest one ending at its loss or lower)."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "converge_table.py")


def write_log(path, losses, mb_per_step, sync_ms=10.0, rank=0):
    """One run: a step per loss, each step evaluated; bytes grow by mb_per_step a step."""
    with open(path, "w") as f:
        for i, loss in enumerate(losses, 1):
            f.write(json.dumps({
                "step": i, "rank": rank, "phase": "compress", "sync_ms": sync_ms,
                "forward_ms": 5.0, "backward_ms": 4.0, "optimizer_ms": 1.0,
                "time_s": i * (sync_ms + 10.0) / 1e3, "val_loss": loss,
                "total_sent": i * mb_per_step * 1e6, "bytes_dense": 1e6}) + "\n")


class ConvergeTable(unittest.TestCase):
    def table(self, runs):
        with tempfile.TemporaryDirectory() as tmp:
            specs = []
            for label, losses, mb in runs:
                path = os.path.join(tmp, label.replace(" ", "_").replace(":", "-") + ".jsonl")
                write_log(path, losses, mb)
                specs.append(f"{label}={path}")
            out = subprocess.run([sys.executable, SCRIPT, "--plots", tmp, "--name", "t"] + specs,
                                 capture_output=True, text=True, env=dict(os.environ, PATH=""))
        self.assertEqual(out.returncode, 0, out.stderr)
        rows = {}
        for line in out.stdout.splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if line.startswith("| ") and cells[0] != "mode":
                rows[cells[0]] = cells
        return rows

    def test_cheapest_static_rank_at_or_below_the_loss(self):
        rows = self.table([
            ("dense", [3.0, 2.0], 1.0),
            ("powersgd:4", [3.0, 2.10], 0.1),   # ends above edgc's loss: not comparable
            ("powersgd:16", [3.0, 2.04], 0.4),  # the same loss: the cheapest at or below it
            ("powersgd:32", [3.0, 2.01], 0.8),
            ("edgc", [3.0, 2.04], 0.2),
        ])
        self.assertEqual(rows["edgc"][9], "0.50 (powersgd:16)")
        self.assertEqual(rows["powersgd:16"][9], "-")
        self.assertEqual(rows["dense"][9], "-")
        # target 2.0 * 1.01 = 2.02: only powersgd:32 and dense reach it, at the last step
        self.assertEqual(rows["powersgd:32"][2], "0.0 (step 2)")
        self.assertEqual(rows["edgc"][2], "not reached")

    def test_every_static_rank_ends_higher(self):
        rows = self.table([
            ("dense", [3.0, 2.0], 1.0),
            ("powersgd:4", [3.0, 2.10], 0.1),
            ("powersgd:8", [3.0, 2.05], 0.2),
            ("edgc", [3.0, 2.01], 0.3),
        ])
        self.assertEqual(rows["edgc"][9], "1.50 (powersgd:8, whose loss is higher)")


if __name__ == "__main__":
    unittest.main()

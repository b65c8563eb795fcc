"""dev/gradstats/gradstats.py on synthetic GRADSTATS lines with known ratios."""
import os
import unittest

from script_case import ScratchCase, script_runner

run = script_runner("dev", "gradstats", "gradstats.py")


class GradStats(ScratchCase):
    def write(self, name, lines):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write("unrelated stderr line\n")
            f.writelines(line + "\n" for line in lines)
        return path

    def test_noise(self):
        # 2 workers: signal S = 1, noise per worker n = 2 in energy, so |G_i|^2 = 1 + 2 each
        # (sum 6) and the mean's |G|^2 = 1 + 2 / 2 = 2; noise in the mean = (6 - 4) / 2 = 1,
        # snr = (2 - 1) / 1 = 1. The second half: signal 3, the same noise: snr 3.
        lines = ["GRADSTATS noise %d 2 6 2" % s for s in range(1, 11)]
        lines += ["GRADSTATS noise %d 2 10 4" % s for s in range(11, 21)]
        out = run("d=" + self.write("d.txt", lines))
        self.assertEqual(out.returncode, 0, out.stderr)
        row = out.stdout.strip()
        self.assertTrue(row.startswith("| d | "), row)
        self.assertIn("steps 1-2: snr 1.00", row)
        self.assertIn("steps 11-20: snr 3.00", row)

    def test_memory_sums_workers(self):
        # two workers; per step <G,e> 1 and 3, |G|^2 4 and 12, |e|^2 16 and 48, <G,G_prev> 2 and 6:
        # e/g = sqrt(64 / 16) = 2, withheld = 4 / 8 = 0.5 in every part
        lines = []
        for s in range(1, 21):
            lines.append("GRADSTATS memory 0 %d 8 1 4 16 2" % s)
            lines.append("GRADSTATS memory 1 %d 8 3 12 48 6" % s)
        out = run("m=" + self.write("m.txt", lines))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.count("e/g 2.00, withheld 0.50"), 4, out.stdout)

    def test_compressed_run_gives_no_noise_figure(self):
        lines = ["GRADSTATS noise %d 2 6 2" % s for s in range(1, 11)]
        lines += ["GRADSTATS memory 0 %d 8 1 4 16 2" % s for s in range(1, 11)]
        out = run("c=" + self.write("c.txt", lines))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn("snr", out.stdout)
        self.assertIn("e/g 2.00", out.stdout)

    def test_refuses_missing_and_empty(self):
        self.assertEqual(run("x=" + os.path.join(self.tmp.name, "none.txt")).returncode, 1)
        empty = run("e=" + self.write("e.txt", []))
        self.assertEqual(empty.returncode, 1)
        self.assertIn("no GRADSTATS lines", empty.stderr)
        self.assertEqual(run().returncode, 2)


if __name__ == "__main__":
    unittest.main()

"""dev/spectrum/spectrum.py on synthetic --dump-grads directories with known spectra."""
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "dev", "spectrum", "spectrum.py")


def matrix(singular, rows, cols, seed):
    """A rows x cols matrix with the given singular values (random orthonormal vectors)."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((rows, len(singular))))
    v, _ = np.linalg.qr(rng.standard_normal((cols, len(singular))))
    return (u * np.asarray(singular, dtype=np.float64)) @ v.T


class Spectrum(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        # a 6x5 matrix of singular values 4, 3 (rank 2), a vector, a 4x8 one of 2, 1, 1, 1
        self.layout = [(0, 6, 5), (30, 7, 1), (37, 4, 8)]
        with open(os.path.join(self.dir, "layout.txt"), "w") as f:
            f.write("# offset rows cols (float32 elements; total 69)\n")
            for t in self.layout:
                f.write("%d %d %d\n" % t)

    def tearDown(self):
        self.tmp.cleanup()

    def dump(self, step, scale_b=1.0, seed=0):
        g = np.concatenate([matrix([4, 3], 6, 5, seed).ravel(), np.arange(7.0),
                            scale_b * matrix([2, 1, 1, 1], 4, 8, seed + 1).ravel()])
        g.astype(np.float32).tofile(os.path.join(self.dir, "grad-%08d.f32" % step))

    def run_script(self, *args):
        return subprocess.run([sys.executable, SCRIPT, self.dir, *args], capture_output=True,
                              text=True)

    def rows(self, out):
        table = {}
        for line in out.splitlines()[2:]:
            step, name, *vals = line.split()
            table[(int(step), name)] = [float(v) for v in vals]
        return table

    def test_fractions_are_eckart_young(self):
        self.dump(5)
        r = self.run_script("--ranks", "1,2,3")
        self.assertEqual(r.returncode, 0, r.stderr)
        t = self.rows(r.stdout)
        # matrix a: 16/25, 1, 1; matrix b: 4/7, 5/7, 6/7 (energy 25 and 7)
        a, b = [16 / 25, 1, 1], [4 / 7, 5 / 7, 6 / 7]
        for got, want in zip(t[(5, "mean")], [(x + y) / 2 for x, y in zip(a, b)]):
            self.assertAlmostEqual(got, want, places=4)
        for got, want in zip(t[(5, "min")], [min(x, y) for x, y in zip(a, b)]):
            self.assertAlmostEqual(got, want, places=4)
        for got, want in zip(t[(5, "weighted")], [(25 * x + 7 * y) / 32 for x, y in zip(a, b)]):
            self.assertAlmostEqual(got, want, places=4)
        self.assertNotIn((5, "adam"), t)  # a lone step has no RMS to divide by

    def test_runs_of_steps_and_the_adam_row(self):
        # steps 3-4 are one run, step 9 another; in the run, matrix b is 10x larger at step 4
        self.dump(3)
        self.dump(4, scale_b=10.0)
        self.dump(9)
        r = self.run_script("--ranks", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        t = self.rows(r.stdout)
        self.assertEqual(sorted(k for k in t), [(3, "mean"), (3, "min"), (3, "weighted"),
                                                (4, "adam"), (9, "mean"), (9, "min"),
                                                (9, "weighted")])
        self.assertAlmostEqual(t[(3, "mean")][0], (1 + 5 / 7) / 2, places=4)
        # per element, a matrix over its RMS across steps where only its scale changes is a
        # multiple of its sign pattern: the row must be the mean of the sign patterns' fractions
        def top2(m):
            s2 = np.linalg.svd(np.sign(m), compute_uv=False) ** 2
            return s2[:2].sum() / s2.sum()

        want = (top2(matrix([4, 3], 6, 5, 0)) + top2(matrix([2, 1, 1, 1], 4, 8, 1))) / 2
        self.assertAlmostEqual(t[(4, "adam")][0], want, places=4)

    def test_signal_counts_directions_above_the_noise_edge(self):
        # matrix a: singular values 50, 40 and 0.9 plus noise of 0.1 per element and step; the
        # mean of 6 steps has its noise edge at 0.1 (sqrt 40 + sqrt 30) / sqrt 6 = 0.48, so all
        # three count (one step's edge, 1.18, would hide the third); matrix b is noise alone
        with open(os.path.join(self.dir, "layout.txt"), "w") as f:
            f.write("# offset rows cols (float32 elements; total 1600)\n0 40 30\n1200 20 20\n")
        rng = np.random.default_rng(7)
        a = matrix([50, 40, 0.9], 40, 30, 3)
        for step in range(1, 7):
            g = np.concatenate([(a + 0.1 * rng.standard_normal((40, 30))).ravel(),
                                rng.standard_normal(400)])
            g.astype(np.float32).tofile(os.path.join(self.dir, "grad-%08d.f32" % step))
        np.zeros(1600, dtype=np.float32).tofile(os.path.join(self.dir, "grad-00000020.f32"))
        r = self.run_script("--signal")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [line.split() for line in r.stdout.splitlines()[2:]]
        self.assertEqual(len(rows), 1)  # step 20 alone is too short a run to have a noise level
        step, steps, mean, most = rows[0][:4]
        self.assertEqual((int(step), int(steps), float(mean), int(most)), (1, 6, 1.5, 3))

    def test_bad_input_is_named(self):
        self.dump(1)
        np.zeros(5, dtype=np.float32).tofile(os.path.join(self.dir, "grad-00000002.f32"))
        r = self.run_script()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("grad-00000002.f32: 5 floats, the layout says 69", r.stderr)
        r = self.run_script("--ranks", "0,4")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--ranks 0,4", r.stderr)
        empty = tempfile.TemporaryDirectory()
        r = subprocess.run([sys.executable, SCRIPT, empty.name], capture_output=True, text=True)
        empty.cleanup()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("layout.txt", r.stderr)


if __name__ == "__main__":
    unittest.main()

"""What the tests of the repository's Python scripts share: running a script as a user would,
and a scratch directory per test."""
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def script_runner(*path):
    """A function that runs the script at ROOT/path with the given arguments and returns the
    completed process (stdout and stderr as text)."""
    script = os.path.join(ROOT, *path)

    def run(*args):
        return subprocess.run([sys.executable, script, *args], capture_output=True, text=True)

    return run


class ScratchCase(unittest.TestCase):
    """A test case with a temporary directory, self.tmp.name, removed after each test."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

"""Stand-in for get-pip.py used by ansible-test: bootstrap pip with ensurepip, then install."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip"])
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)

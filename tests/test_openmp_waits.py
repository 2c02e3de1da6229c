"""fe_fast/__init__.py asks OpenMP for passive waits when it is imported before torch and the user
chose nothing: the runtime torch loads (shared with fe_fast._C) then reports a spin count of 0.
A user's OMP_WAIT_POLICY / GOMP_SPINCOUNT, or torch imported first, is left alone."""
import os
import subprocess
import sys

import pytest

CODE = "import {first}, {second}, os; print('policy', os.environ.get('OMP_WAIT_POLICY'))"


def _run(first, second, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    base.update(env, OMP_DISPLAY_ENV="verbose")
    r = subprocess.run([sys.executable, "-c", CODE.format(first=first, second=second)],
                       capture_output=True, text=True, env=base, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    spin = [line.split("=")[1].strip().strip("'") for line in r.stderr.splitlines()
            if line.strip().startswith("GOMP_SPINCOUNT")]
    policy = [line.split()[1] for line in r.stdout.splitlines() if line.startswith("policy")][0]
    return policy, spin


def test_fe_fast_first_gives_passive_waits():
    policy, spin = _run("fe_fast", "torch")
    if not spin:
        pytest.skip("this OpenMP runtime does not print GOMP_SPINCOUNT (not libgomp)")
    assert policy == "PASSIVE" and spin == ["0"]


@pytest.mark.parametrize("env", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "1234"}],
                         ids=["policy", "spincount"])
def test_user_choice_is_kept(env):
    policy, spin = _run("fe_fast", "torch", **env)
    assert policy == str(env.get("OMP_WAIT_POLICY"))
    if "GOMP_SPINCOUNT" in env and spin:
        assert spin == ["1234"]


def test_torch_first_is_left_alone():
    policy, spin = _run("torch", "fe_fast")
    assert policy == "None"
    if spin:
        assert spin != ["0"]

"""Shared test configuration.

Hypothesis runs without deadlines (Numba compiles a kernel the first time it
sees a new signature, which would trip any per-example deadline) and is
derandomised in CI so a red run can be reproduced exactly.
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev",
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    parent=settings.get_profile("dev"),
    derandomize=True,
    print_blob=True,
)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

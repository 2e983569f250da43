"""Suite-wide settings: the hypothesis profiles."""

import os

from hypothesis import HealthCheck, settings

# CI runs derandomized with a bounded number of examples so that a run is repeatable;
# locally the default profile explores more.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=300, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

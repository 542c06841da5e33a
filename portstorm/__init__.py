"""portstorm: an ephemeral-port exhaustion load tester.

Nothing is imported here on purpose: ``import portstorm`` must stay cheap and free of
side effects, and ``portstorm.core`` must never pull in trio or matplotlib.
"""

__version__ = "0.1.0"

"""crimecast: place-based weekly crime forecasting with an auditable ML lifecycle.

The domain library every stage shares. It imports none of ``training``, ``serving``
or ``monitoring``; the command line (``crimecast.cli``) loads them lazily.
"""

__version__ = "0.1.0"

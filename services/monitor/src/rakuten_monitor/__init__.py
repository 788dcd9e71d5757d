"""rakuten_monitor: drift and live quality over serve's prediction records, for Prometheus.

``settings`` (MonitorSettings), ``reference`` (the bundle's drift reference, read without
TensorFlow), ``window`` (the recent records), ``snapshot`` (one evaluation), ``metrics`` (the
gauges), ``report`` (the HTML drift report), ``service`` (the periodic loop), ``app`` (HTTP)
and ``cli`` (``rakuten-monitor``).
"""

__version__ = "0.1.0"

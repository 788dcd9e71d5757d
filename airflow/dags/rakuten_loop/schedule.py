"""The retraining DAG's period, as ``RakutenTrainingStale`` needs it (monitoring/prometheus).

The alert fires when the DAG has not succeeded for longer than its schedule allows. Rather than
a second copy of ``RAKUTEN_RETRAIN_SCHEDULE`` in the rule, the DAG's ``report`` task computes
the longest gap between two of its scheduled runs from Airflow's own timetable (cron
expressions and presets alike: ``@monthly`` is 31 days, not 30) and pushes it with the run's
figures (``rakuten-train report-retrain --schedule-period-s``); the rule compares the time since
the last success with it. A DAG without a periodic schedule (``none``, ``@once``) pushes none
and the alert cannot fire.

Only Airflow's environment imports this module (the DAG's tasks), never the DAG file's top
level: the timetable comes from the running DAG, nothing is computed at parse time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

RUNS = 25  # consecutive runs compared: two years of a monthly schedule, a day of an hourly one


def longest_period_s(timetable: Any, *, start: datetime, runs: int = RUNS) -> float | None:
    """Longest gap in seconds between two consecutive runs ``timetable`` schedules after
    ``start`` (an aware datetime); None for a timetable that does not repeat."""
    from airflow.timetables.base import TimeRestriction  # noqa: PLC0415 (Airflow's env only)
    from airflow.utils.timezone import coerce_datetime  # noqa: PLC0415

    if not timetable.periodic:
        return None
    # Airflow's timetables compute with pendulum's datetimes
    restriction = TimeRestriction(earliest=coerce_datetime(start), latest=None, catchup=True)
    last_interval = None
    previous: datetime | None = None
    gaps: list[float] = []
    for _ in range(runs):
        info = timetable.next_dagrun_info(
            last_automated_data_interval=last_interval, restriction=restriction
        )
        if info is None:
            break
        if previous is not None:
            gaps.append((info.run_after - previous).total_seconds())
        previous, last_interval = info.run_after, info.data_interval
    return max(gaps) if gaps else None


def report_args(timetable: Any, *, now: datetime) -> list[str]:
    """What ``rakuten-train report-retrain`` gets from the schedule: the period, if any."""
    period = longest_period_s(timetable, start=now)
    return [] if period is None else ["--schedule-period-s", f"{period:.0f}"]

"""Counts of the report (nas/report/gather.py): failed, never validated and diverged trials."""

from __future__ import annotations


def test_report_counts_failed_unvalidated_and_diverged_trials(reported):
    out = reported.out
    assert "state FAIL: 1" in out and "complete, never validated: 1" in out and "used: diverged: 1" in out

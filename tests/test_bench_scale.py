"""The scale benchmark's projection arithmetic (bench/scale.py): what it extrapolates from a few
measured storms to 410,000 registrations. The measuring itself is the other scenarios'."""

from __future__ import annotations

import pytest

from bench.scale import cluster_speedup, grown_mib, storm_fit, storm_minutes


def test_a_storms_fixed_delay_is_not_counted_as_slowness_when_it_is_extrapolated() -> None:
    # 11 s before the first timer's expiry is handled, then 20 expiries/s: 1,000 end at 61 s, 10,000 at 511 s.
    offset, rate = storm_fit([(1000, 61.0), (10_000, 511.0)])
    assert offset == pytest.approx(11.0) and rate == pytest.approx(20.0)
    # 1,000 alone would say 16.4/s and make 410,000 take 417 min instead of 342.
    assert storm_minutes(410_000, (offset, rate)) == pytest.approx((11 + 20_500) / 60)


def test_one_storm_or_a_storm_that_got_faster_with_n_extrapolates_its_own_rate() -> None:
    assert storm_fit([(1000, 50.0)]) == (0.0, 20.0)
    # Noise (the larger storm ended sooner) gives no slope to trust: the largest N's own rate.
    assert storm_fit([(60, 12.0), (200, 10.0)]) == (0.0, 20.0)


def test_the_workflow_worker_stops_growing_at_the_sdk_cache_and_temporal_does_not() -> None:
    worker = grown_mib(200.0, 500, per_1000_mib=200.0, to=410_000, bound=1000)
    assert worker == pytest.approx(300.0)  # 500 more cached, then evicted and replayed: flat
    assert grown_mib(300.0, 10_000, per_1000_mib=5.0, to=410_000, bound=1000) == 300.0
    assert grown_mib(1000.0, 10_000, per_1000_mib=100.0, to=410_000) == pytest.approx(41_000.0)


def test_more_workers_speed_up_only_up_to_the_servers_ceiling() -> None:
    assert cluster_speedup(4, ceiling_factor=2.6) == 2.6
    assert cluster_speedup(2, ceiling_factor=2.6) == 2.0
    assert cluster_speedup(8, ceiling_factor=0.5) == 1.0  # a measured ceiling below one worker: no gain

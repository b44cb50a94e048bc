

def test_the_cfl_controller_keeps_its_step_until_forced_or_allowed_25_percent_more():
    import math

    from solver.time_stepping import adaptive_step
    h = adaptive_step(10.0, 5.0, None, cfl=0.5)
    assert math.isclose(h, 0.9 * 0.05)
    assert adaptive_step(11.0, 5.0, h, cfl=0.5) == h                 # 0.0455 > h: kept
    assert math.isclose(adaptive_step(12.0, 5.0, h, cfl=0.5), 0.9 * 0.5 / 12.0)  # the bound fell below the step
    assert adaptive_step(9.0, 5.0, h, cfl=0.5) == h                  # 0.0556 < 1.25 h: kept
    assert math.isclose(adaptive_step(7.0, 5.0, h, cfl=0.5), 0.9 * 0.5 / 7.0)  # allows 25% more: grown
    assert adaptive_step(1.0, 5.0, None, cfl=0.5, max_dt=0.01) == 0.01  # the cap, taken whole
    assert adaptive_step(0.0, 0.05, None, cfl=0.5) == 0.05              # no flow: the remaining time

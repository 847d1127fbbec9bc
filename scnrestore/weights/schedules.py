"""Piecewise-linear schedules of the registry: ``keep_luma`` / ``keep_input``
(a share per level) and ``told_level`` (the level a network is told per true one)."""

from __future__ import annotations

__all__ = ["schedule_weight", "told_level"]


def told_level(points: list[list[float]], level: float) -> float:
    """A ``told_level`` schedule at ``level``: linear between its (level, told)
    points, the nearest end's ratio beyond them; ``level`` for an empty one."""
    if not points:
        return float(level)
    (x0, t0), (xn, tn) = points[0], points[-1]
    if level <= x0:
        return float(level * t0 / x0)
    if level >= xn:
        return float(level * tn / xn)
    return schedule_weight(points, level)


def schedule_weight(points: list[list[float]], level: float) -> float:
    """A ``keep_luma`` / ``keep_input`` schedule at ``level``: linear between
    its (level, weight) points, flat beyond the ends; 0 for an empty one.
    (``told_level`` uses it between its points.)"""
    if not points:
        return 0.0
    (x0, w0), *rest = points
    if level <= x0:
        return float(w0)
    for x1, w1 in rest:
        if level <= x1:
            return float(w0 + (w1 - w0) * (level - x0) / (x1 - x0))
        x0, w0 = x1, w1
    return float(w0)

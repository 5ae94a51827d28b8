"""The activity chart's geometry: hourly counts as SVG polylines in a fixed viewBox, with a
label per day and a few gridlines. Server-side, so the chart needs no script."""

from __future__ import annotations

from dataclasses import dataclass

from passgate.server.services.activity import Activity

WIDTH, HEIGHT = 840, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 28


@dataclass(frozen=True, kw_only=True, slots=True)
class Series:
    label: str
    css_class: str
    points: str  # "x,y x,y ..." for <polyline points>
    total: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Chart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int  # y of the x axis
    series: list[Series]
    days: list[tuple[float, str]]  # x and label of each day's first hour
    gridlines: list[tuple[float, int]]  # y and value


def _scale(peak: int) -> int:
    """The y axis's top: a round number at or above the peak (at least 4)."""
    for step in (4, 10, 20, 40, 100, 200, 400, 1000):
        if peak <= step:
            return step
    magnitude: int = 10 ** (len(str(peak)) - 1)
    return -(-peak // magnitude) * magnitude


def hourly_chart(activity: Activity) -> Chart:
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    count = max(len(activity.hours), 2)
    top_value = _scale(activity.peak)

    def x(index: int) -> float:
        return round(LEFT + plot_width * index / (count - 1), 1)

    def y(value: int) -> float:
        return round(TOP + plot_height * (1 - value / top_value), 1)

    def points(values: list[int]) -> str:
        return " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(values))

    named = (
        ("Sign-ins", "sign-ins", activity.sign_ins),
        ("Approvals", "approvals", activity.approvals),
        ("Rejections", "rejections", activity.rejections),
    )
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=WIDTH - RIGHT,
        top=TOP,
        bottom=HEIGHT - BOTTOM,
        series=[
            Series(label=label, css_class=css, points=points(values), total=sum(values))
            for label, css, values in named
        ],
        days=[
            (x(i), hour.strftime("%a %d"))
            for i, hour in enumerate(activity.hours)
            if hour.hour == 0
        ],
        gridlines=[(y(value), value) for value in (0, top_value // 2, top_value)],
    )

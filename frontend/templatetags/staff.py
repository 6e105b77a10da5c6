"""Template filters of the staff pages."""

from django import template

register = template.Library()


@register.filter
def duration(seconds) -> str:
    """Seconds as a person reads them: `0.8 s`, `42 s`, `3 min 5 s`, `1 h 2 min`; `–` for none."""
    if seconds is None:
        return "–"
    seconds = float(seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"

"""The two public pages. They are shells: the swipe and leaderboard data come from the JSON API."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe


@require_safe
@ensure_csrf_cookie  # swipe.js reads the csrftoken cookie to send X-CSRFToken with each vote
def swipe(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/swipe.html")


@require_safe
def leaderboard(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/leaderboard.html")

"""One simulated visitor of the real API over loopback: cookies, the CSRF header, its own client address."""

from __future__ import annotations

import http.client
import json
import secrets


class Visitor:
    """What a browser does for the swipe page, with http.client: a cookie jar (the voter cookie, csrftoken) and
    an X-Forwarded-For address (the server trusts one proxy hop, as behind the README's reverse proxy)."""

    def __init__(self, port: int, ip: str, *, staff_token: str | None = None):
        self.port = port
        self.ip = ip
        self.staff_token = staff_token
        self.cookies: dict[str, str] = {}
        self.clear()

    def clear(self) -> None:
        """A fresh identity: no voter cookie. The CSRF cookie is a double-submit token any page can make."""
        self.cookies = {"csrftoken": secrets.token_hex(16)}

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"X-Forwarded-For": self.ip, "Accept": "application/json"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.staff_token:
            headers["Authorization"] = f"Token {self.staff_token}"
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers.update({"Content-Type": "application/json", "X-CSRFToken": self.cookies.get("csrftoken", "")})
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    key, _, rest = value.split(";", 1)[0].partition("=")
                    self.cookies[key.strip()] = rest.strip()
        finally:
            connection.close()
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = {"detail": data[:200].decode("latin-1")}
        return response.status, parsed if isinstance(parsed, dict) else {"data": parsed}

    def card(self) -> tuple[int, dict]:
        return self.request("GET", "/api/pairs/next")

    def vote(self, token: str, verdict: str, shown_ms: int) -> tuple[int, dict]:
        return self.request("POST", "/api/votes", {"token": token, "verdict": verdict, "shown_ms": shown_ms})

    def undo(self) -> tuple[int, dict]:
        return self.request("POST", "/api/votes/undo", {})

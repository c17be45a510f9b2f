"""robots.txt: its rules for our user agent (RFC 9309), read once per origin and crawl.

``Disallow`` / ``Allow`` for our product token, else ``*``: the longest match wins, ``*`` and
``$`` as wildcards. A 4xx means no robots.txt (all allowed); a 5xx or an unreachable server also
allows all, with a note. ``Crawl-delay`` spaces the requests to the origin, capped at
MAX_CRAWL_DELAY.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin

from requests.utils import requote_uri

from fruxon_pipelines.sources.web.client import (
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    FetchFailure,
    WebClient,
)
from fruxon_pipelines.sources.web.urls import normalize_url, origin_of, path_and_query

MAX_CRAWL_DELAY = 10.0
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks crawlers to parse at least 500 KiB


@dataclass(frozen=True)
class _Rule:
    allow: bool
    text: str  # as written, for messages: "Disallow: /private/"
    length: int
    regex: re.Pattern[str]


def _rule_regex(pattern: str) -> re.Pattern[str]:
    anchored = pattern.endswith("$")
    if anchored:
        pattern = pattern[:-1]
    # Compare in the same percent-encoding as request paths.
    pattern = requote_uri(pattern)
    body = ".*".join(re.escape(piece) for piece in pattern.split("*"))
    return re.compile(body + ("$" if anchored else ""), re.S)


@dataclass
class RobotsRules:
    """The robots.txt group that applies to one user agent (RFC 9309)."""

    rules: list[_Rule] = field(default_factory=list)
    crawl_delay: float | None = None

    @classmethod
    def parse(cls, text: str, user_agent: str) -> RobotsRules:
        """Rules of the groups naming our product token (first word of the User-Agent, case-
        insensitive), else of the ``*`` groups, else none (all allowed)."""
        token = _product_token(user_agent)
        groups: list[tuple[list[str], list[_Rule], list[float]]] = []
        current: tuple[list[str], list[_Rule], list[float]] | None = None
        in_agent_lines = False
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key, value = key.strip().lower(), value.strip()
            if key == "user-agent":
                if current is None or not in_agent_lines:
                    current = ([], [], [])
                    groups.append(current)
                current[0].append(value.lower())
                in_agent_lines = True
                continue
            if key == "sitemap":
                continue  # not part of any group
            in_agent_lines = False
            if current is None:
                continue
            if key in ("allow", "disallow") and value:
                label = "Allow" if key == "allow" else "Disallow"
                current[1].append(
                    _Rule(key == "allow", f"{label}: {value}", len(value), _rule_regex(value))
                )
            elif key == "crawl-delay":
                try:
                    delay = float(value)
                except ValueError:
                    continue
                if delay >= 0:
                    current[2].append(delay)

        def matches(agent: str) -> bool:
            return agent == token or agent.split("/", 1)[0].strip() == token

        chosen = [g for g in groups if any(matches(a) for a in g[0])]
        if not chosen:
            chosen = [g for g in groups if "*" in g[0]]
        rules = [rule for g in chosen for rule in g[1]]
        delays = [d for g in chosen for d in g[2]]
        return cls(rules=rules, crawl_delay=max(delays) if delays else None)

    def blocking_rule(self, path: str) -> str | None:
        """The rule that disallows ``path`` (path and query), or None when it is allowed.

        The longest matching pattern wins; on a tie Allow wins.
        """
        if path == "/robots.txt":
            return None
        best: _Rule | None = None
        for rule in self.rules:
            if not rule.regex.match(path):
                continue
            if (
                best is None
                or rule.length > best.length
                or (rule.length == best.length and rule.allow)
            ):
                best = rule
        if best is None or best.allow:
            return None
        return best.text


def _product_token(user_agent: str) -> str:
    found = re.match(r"\s*([A-Za-z0-9_-]+)", user_agent)
    return found.group(1).lower() if found else user_agent.strip().lower()


class RobotsCache:
    """The robots.txt rules of every origin a crawl requests, each read once through the
    crawl's client; an origin's Crawl-delay is handed to the client as it is read."""

    def __init__(self, client: WebClient, note: Callable[[str], None]) -> None:
        self.client = client
        self.note = note
        self.rules: dict[str, RobotsRules] = {}

    def blocking_rule(self, url: str) -> str | None:
        """The rule that disallows ``url``, or None (an unreadable robots.txt allows all)."""
        origin = origin_of(url)
        rules = self.rules.get(origin)
        if rules is None:
            rules = self._load(origin)
            self.rules[origin] = rules
            if rules.crawl_delay:
                self.client.crawl_delays[origin] = min(rules.crawl_delay, MAX_CRAWL_DELAY)
        return rules.blocking_rule(path_and_query(url))

    def _load(self, origin: str) -> RobotsRules:
        url = f"{origin}/robots.txt"
        allow_all = RobotsRules()
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                response = self.client.get(url, {})
            except FetchFailure as failure:
                self.note(f"{url} could not be fetched ({failure.message}); crawling as allowed")
                return allow_all
            try:
                status = response.status_code
                if status in REDIRECT_STATUSES and response.headers.get("Location"):
                    target = normalize_url(urljoin(url, response.headers["Location"]))
                    self.client.drain(response)
                    if target is None:
                        return allow_all
                    url = target
                    continue
                if 400 <= status < 500 and status != 429:
                    return allow_all  # no robots.txt: everything is allowed
                if not 200 <= status < 300:
                    self.note(f"{url} answered HTTP {status}; crawling as allowed")
                    return allow_all
                data = self.client.read_body(response, ROBOTS_MAX_BYTES, truncate=True)
            except FetchFailure as failure:
                self.note(f"{url} could not be read ({failure.message}); crawling as allowed")
                return allow_all
            finally:
                response.close()
            rules = RobotsRules.parse(
                data.decode("utf-8", errors="replace"), self.client.user_agent
            )
            if rules.crawl_delay and rules.crawl_delay > MAX_CRAWL_DELAY:
                self.note(
                    f"{url} asks for Crawl-delay {rules.crawl_delay:g} s; "
                    f"using {MAX_CRAWL_DELAY:g} s"
                )
            return rules
        self.note(f"{origin}/robots.txt redirects too often; crawling as allowed")
        return allow_all

"""Apache ``LogFormat`` and nginx ``log_format`` strings, compiled once into a line parser.

Users know their server's log format string, not a regex: ``%h %l %u %t \\"%r\\" %>s %b`` or
``$remote_addr - $remote_user [$time_local] "$request" $status ...``. The string is split into literals and
directives; each directive becomes a regex piece (a named group when it carries a field we use: client,
time, request line or method/path/query, status, size, referrer, user agent), and the whole line is read by
one ``re.match`` plus a fixed post-processing step, so the parser costs about what a hand-written regex
does. Fields a format lacks come out as empty groups, which keeps that step the same for every format.

Apache directives are checked against the documented list (an unknown one is an error naming it); nginx
has hundreds of variables and modules add more, so an nginx variable we do not use is read as an ignored
field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from precache.traces.clf import split_request
from precache.traces.errors import TraceFormatError
from precache.traces.model import Request
from precache.traces.records import make_request
from precache.traces.timeformats import TimeParser, make_time_parser

PRESETS: dict[str, str] = {
    "common": '%h %l %u %t "%r" %>s %b',
    "combined": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"',
    "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
    "nginx": '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"',
}
"""Apache's ``common``/``combined``/``vhost_combined`` and nginx's default ``combined``."""

FIELDS = ("client", "time", "request", "method", "path", "query", "status", "size", "referrer", "agent")
"""Named groups of every compiled regex, in the order the post-processing step reads them."""

_QUOTED = r'[^"\\]*(?:\\.[^"\\]*)*'
_APACHE_TOKEN = re.compile(r"%([<>]?)(!?\d{3}(?:,\d{3})*)?(?:\{([^}]*)\})?([<>]?)(\^t[io]|[A-Za-z%])")
_NGINX_TOKEN = re.compile(r"\$(?:\{(\w+)\}|(\w+))")

# Apache letters (mod_log_config) -> our field, or "" for a field we read past.
_APACHE: dict[str, str] = {
    "h": "client", "a": "client", "t": "time", "r": "request", "m": "method", "U": "path", "q": "query",
    "s": "status", "b": "size", "B": "size", "O": "size",
    "A": "", "C": "", "D": "", "e": "", "f": "", "H": "", "i": "", "I": "", "k": "", "l": "", "L": "",
    "M": "", "n": "", "o": "", "p": "", "P": "", "R": "", "S": "", "T": "", "u": "", "v": "", "V": "",
    "X": "", "^ti": "", "^to": "",
}  # fmt: skip
_FREE_TEXT = frozenset({"C", "e", "i", "n", "o", "r", "^ti", "^to"})
"""Directives whose value may contain spaces (request line, headers, cookies, environment)."""

_NGINX: dict[str, str] = {
    "remote_addr": "client", "realip_remote_addr": "client", "time_local": "time", "time_iso8601": "time",
    "msec": "time", "request": "request", "request_method": "method", "request_uri": "path", "uri": "path",
    "document_uri": "path", "args": "query", "query_string": "query", "status": "status",
    "body_bytes_sent": "size", "bytes_sent": "size", "http_referer": "referrer", "http_user_agent": "agent",
}  # fmt: skip
_NGINX_TIME_FORMATS = {"time_local": "clf", "time_iso8601": "iso8601", "msec": "epoch"}
_APACHE_TIME_UNITS = {"sec": "epoch", "msec": "ms", "usec": "us"}


@dataclass(frozen=True, slots=True)
class _Piece:
    field: str  # one of FIELDS, or "" for a field read past
    kind: str  # "word" (no spaces), "free" (may hold spaces), "stem", "query", "status", "size", "time_clf"


def resolve_log_format(text: str) -> str:
    """The format string for a preset name, or ``text`` itself."""
    return PRESETS.get(text.strip(), text)


def is_nginx(text: str) -> bool:
    """True for an nginx ``log_format`` string (``$variables``, no ``%`` directives)."""
    return bool(_NGINX_TOKEN.search(text)) and not _APACHE_TOKEN.search(text.replace("%%", ""))


def _unescape(text: str) -> str:
    """Apache config strings write quotes as ``\\"``; a shell-quoted argument often keeps them."""
    return text.replace('\\"', '"').replace("\\t", "\t").replace("\\n", "\n")


def _tokens(text: str) -> tuple[list[str | _Piece], str | None]:
    """Literals and pieces of a format string, plus the time format its time directive implies."""
    out: list[str | _Piece] = []
    time_format: str | None = None
    nginx = is_nginx(text)
    token = _NGINX_TOKEN if nginx else _APACHE_TOKEN
    position = 0
    for match in token.finditer(text):
        out.append(text[position : match.start()])
        position = match.end()
        if nginx:
            name = match.group(1) or match.group(2)
            field = _NGINX.get(name, "")
            kind = "free"
            if field == "time":
                time_format = _NGINX_TIME_FORMATS[name]
                kind = "time_clf" if name == "time_local" else "word"
            elif field in ("status", "size"):
                kind = field
            elif name in ("uri", "document_uri"):
                kind = "stem"
            elif field in ("client", "method", "path", "query"):
                kind = "word"
            out.append(_Piece(field, kind))
            continue
        _, _, argument, _, letter = match.groups()
        if letter == "%":
            out.append("%")
            continue
        if letter not in _APACHE:
            raise TraceFormatError(
                f"unknown LogFormat directive %{letter} in {text!r} "
                "(see Apache mod_log_config: %h %l %u %t %r %>s %b %{Header}i ...)"
            )
        field = _APACHE[letter]
        if letter == "i" and argument is not None:
            header = argument.strip().lower()
            field = {"referer": "referrer", "referrer": "referrer", "user-agent": "agent"}.get(header, "")
        kind = "free" if letter in _FREE_TEXT else {"U": "stem", "q": "query"}.get(letter, "word")
        if field == "time":
            if argument is None:
                kind, time_format = "time_clf", "clf"
            else:
                spec = argument.removeprefix("begin:").removeprefix("end:")
                time_format = _APACHE_TIME_UNITS.get(spec, spec)
                if spec in ("msec_frac", "usec_frac"):
                    field = ""
                else:
                    kind = "word" if spec in _APACHE_TIME_UNITS else "free"
        elif field in ("status", "size"):
            kind = field
        out.append(_Piece(field, kind))
    out.append(text[position:])
    return [item for item in out if item != ""], time_format


_SPLIT_REQUEST = r"(?P<request>)(?P<method>[A-Za-z]{1,16}) (?P<path>[^\s\"]+) [A-Z]{4,5}/[0-9.]{1,3}"
"""A quoted ``%r`` in its usual shape, split by the regex itself (the fast variant)."""


def _piece_regex(piece: _Piece, before: str, after: str, last: bool, seen: set[str], split: bool) -> str:
    """The regex of one directive; the first directive of a field is its group (``%b ... %O``: size once).

    With ``split``, a quoted request line is matched as method, path and protocol (the fast variant).
    """
    quoted = before.endswith('"') and after.startswith('"')
    if split and quoted and piece.field == "request" and "request" not in seen:
        seen.update(("request", "method", "path"))
        return _SPLIT_REQUEST
    if piece.kind == "time_clf":
        bracketed = not before.endswith("[")
        body = r"[^\]]+" if bracketed else r"\d{1,2}/[A-Za-z]{3}/\d{4}:\d{1,2}:\d{2}:\d{2}(?: [+\-]\d{4})?"
        group = f"(?:{body})"
        if piece.field == "time" and "time" not in seen:
            seen.add("time")
            group = f"(?P<time>{body})"
        return r"\[" + group + r"\]" if bracketed else group
    if piece.kind == "status":
        body = r"\d{3}|-"
    elif piece.kind == "size":
        body = r"\d+|-"
    elif piece.kind == "stem":  # a path without its query (%U, $uri)
        body = r'[^\s?"]+'
    elif piece.kind == "query":  # Apache's %q: empty, or "?" and the query
        body = r'(?:\?[^\s"]*)?'

    elif quoted:
        body = _QUOTED
    elif piece.kind == "free":
        body = ".*" if last else ".*?"
    else:
        stop = after[:1]
        body = r"\S+" if stop in ("", " ", "\t") else r"[^\s" + re.escape(stop) + "]+"
    if piece.field == "request" and "request" not in seen and not seen & {"method", "path"}:
        seen.update(("request", "method", "path"))  # the same group numbers as the fast variant
        return f"(?P<request>{body})(?P<method>)(?P<path>)"
    if piece.field and piece.field not in seen:
        seen.add(piece.field)
        return f"(?P<{piece.field}>{body})"
    return f"(?:{body})"


@dataclass(frozen=True, slots=True)
class CompiledFormat:
    """A format string compiled: its regexes, the time format its time directive implies, its fields.

    ``fast`` (or ``None``) reads the usual request line ``GET /x HTTP/1.1`` with the regex itself;
    ``regex`` reads every line the format allows and is tried when ``fast`` does not match.
    """

    source: str
    regex: re.Pattern[str]
    fast: re.Pattern[str] | None
    time_format: str | None
    fields: frozenset[str]


def _assemble(tokens: list[str | _Piece], split: bool) -> tuple[str, set[str]]:
    seen: set[str] = set()
    parts: list[str] = []
    for index, item in enumerate(tokens):
        if isinstance(item, str):
            parts.append(re.escape(item))
            continue
        before = tokens[index - 1] if index > 0 and isinstance(tokens[index - 1], str) else ""
        after = tokens[index + 1] if index + 1 < len(tokens) and isinstance(tokens[index + 1], str) else ""
        parts.append(_piece_regex(item, str(before), str(after), index == len(tokens) - 1, seen, split))
    parts.extend(f"(?P<{name}>)" for name in FIELDS if name not in seen)
    return "".join(parts), seen


def compile_log_format(text: str, time_format: str | None = None) -> CompiledFormat:
    """Compile an Apache/nginx format string or preset; TraceFormatError names what is wrong with it."""
    source = _unescape(resolve_log_format(text))
    tokens, implied_time = _tokens(source)
    general, fields = _assemble(tokens, split=False)
    if "time" not in fields:
        raise TraceFormatError(f"log format {text!r} has no time directive (%t, %{{...}}t, $time_local ...)")
    if "request" not in fields and "path" not in fields:
        raise TraceFormatError(f"log format {text!r} has no request directive (%r or %U, $request or $request_uri)")
    fast: re.Pattern[str] | None = None
    fast_source, _ = _assemble(tokens, split=True)
    if fast_source != general:
        fast = re.compile(fast_source)
    return CompiledFormat(text, re.compile(general), fast, time_format or implied_time, frozenset(fields))


def make_log_format_parser(text: str, time_format: str | None = None) -> Callable[[str], Request | None]:
    """A line parser for a format string (see :func:`compile_log_format`)."""
    compiled = compile_log_format(text, time_format)
    return make_regex_parser(compiled.regex, make_time_parser(compiled.time_format), fast=compiled.fast)


def make_regex_parser(
    regex: re.Pattern[str], parse_time: TimeParser, default_client: str = "-", fast: re.Pattern[str] | None = None
) -> Callable[[str], Request | None]:
    """Line parser for a regex with every group of :data:`FIELDS` (absent ones matching empty).

    ``fast`` (same groups) is tried first when given.
    """
    match = regex.match
    fast_match = fast.match if fast is not None else match
    build = make_request
    index = tuple(regex.groupindex[name] for name in FIELDS)
    if fast is not None and index != tuple(fast.groupindex[name] for name in FIELDS):
        raise ValueError("the fast regex must number its groups like the general one")

    def parse(line: str) -> Request | None:
        found = fast_match(line) or match(line)
        if found is None:
            return None
        client, stamp, request, method, path, query, status, size, referrer, agent = found.group(*index)
        moment = parse_time(stamp)
        if moment is None:
            return None
        if path:
            if not method:
                method = "GET"
            elif not method.isupper():
                if not method.isalpha():
                    return None
                method = method.upper()
        elif request:
            pair = split_request(request)
            if pair is None:
                return None
            method, path = pair
        else:
            return None
        if query:
            path = path + query if query[0] == "?" else path + "?" + query
        return build(
            moment,
            client or default_client,
            path,
            method,
            int(status) if status and status != "-" else 0,
            int(size) if size and size != "-" else 0,
            referrer if referrer and referrer != "-" else None,
            agent if agent and agent != "-" else None,
        )

    return parse

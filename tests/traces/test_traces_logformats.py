# ruff: noqa: E501  (fixture lines are copied whole, as the servers write them)
"""Logs as servers write them: Apache/nginx format strings, JSON lines, W3C, ITA, --pattern, auto.

The fixture lines are written by hand after each server's documentation (Apache mod_log_config, nginx
ngx_http_log_module, Caddy's and Envoy's and Traefik's access-log docs, IIS and CloudFront W3C logs).
"""

from __future__ import annotations

import calendar
from pathlib import Path

import pytest

from precache.traces import TraceFormatError, detect_format, read_requests
from precache.traces.logformat import PRESETS, compile_log_format, make_log_format_parser

APACHE_COMBINED = (
    '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
    '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'
)
T_2000 = calendar.timegm((2000, 10, 10, 20, 55, 36, 0, 0, 0))


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_apache_combined_preset_reads_referrer_and_agent() -> None:
    request = make_log_format_parser("combined")(APACHE_COMBINED)
    assert request is not None
    assert (request.client, request.time, request.method, request.path) == ("127.0.0.1", T_2000, "GET",
                                                                           "/apache_pb.gif")
    assert (request.status, request.size) == (200, 2326)
    assert request.referrer == "http://www.example.com/start.html"
    assert request.agent == "Mozilla/4.08 [en] (Win98; I ;Nav)"


def test_common_preset_and_the_same_string_written_out() -> None:
    line = '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 -'
    for spec in ("common", r'%h %l %u %t \"%r\" %>s %b'):
        request = make_log_format_parser(spec)(line)
        assert request is not None and request.size == 0 and request.referrer is None


def test_vhost_combined_takes_the_client_not_the_vhost(tmp_path: Path) -> None:
    lines = [
        f'example.com:443 203.0.113.{i} - - [10/Oct/2000:13:55:{i:02d} -0700] "GET /p{i}.html HTTP/1.1" 200 '
        f'{100 + i} "-" "curl/8.0"'
        for i in range(9)
    ]
    path = _write(tmp_path, "vhost.log", "\n".join(lines) + "\n")
    assert detect_format(path) == "vhost_combined"
    requests = list(read_requests(path))
    assert {r.client for r in requests} == {f"203.0.113.{i}" for i in range(9)}
    assert requests[0].agent == "curl/8.0" and requests[0].referrer is None


def test_nginx_default_combined() -> None:
    line = ('192.0.2.1 - - [22/Mar/2024:10:15:32 +0000] "GET /index.html?x=1 HTTP/1.1" 200 615 "-" '
            '"Mozilla/5.0 (X11; Linux x86_64)"')
    request = make_log_format_parser("nginx")(line)
    assert request is not None
    assert (request.client, request.path, request.size) == ("192.0.2.1", "/index.html?x=1", 615)
    assert request.time == calendar.timegm((2024, 3, 22, 10, 15, 32, 0, 0, 0))


def test_nginx_custom_format_with_iso_time_and_split_request() -> None:
    fmt = '$remote_addr [$time_iso8601] $request_method $request_uri $status $bytes_sent $request_time "$http_user_agent"'
    line = '198.51.100.7 [2024-03-22T10:15:32+01:00] get /a/b.html 304 0 0.012 "Wget/1.21"'
    request = make_log_format_parser(fmt)(line)
    assert request is not None
    assert (request.method, request.path, request.status, request.agent) == ("GET", "/a/b.html", 304, "Wget/1.21")
    assert request.time == calendar.timegm((2024, 3, 22, 9, 15, 32, 0, 0, 0))


@pytest.mark.parametrize(
    ("fmt", "line", "field", "value"),
    [
        ("%a %t %r", '10.1.1.1 [10/Oct/2000:13:55:36 -0700] GET /x HTTP/1.1', "client", "10.1.1.1"),
        ('%h %{%Y-%m-%d %H:%M:%S}t "%r"', 'h 2000-10-10 20:55:36 "GET /x HTTP/1.1"', "time", float(T_2000)),
        ('%h %{sec}t "%r"', f'h {T_2000} "GET /x HTTP/1.1"', "time", float(T_2000)),
        ('%h %{msec}t "%r"', f'h {T_2000}123 "GET /x HTTP/1.1"', "time", T_2000 + 0.123),
        ('%h %{begin:usec}t "%r"', f'h {T_2000}000001 "GET /x HTTP/1.1"', "time", T_2000 + 1e-6),
        ("%h %t %m %U%q %H", "h [10/Oct/2000:13:55:36 -0700] POST /f?a=1 HTTP/1.1", "path", "/f?a=1"),
        ("%h %t %m %U%q %H", "h [10/Oct/2000:13:55:36 -0700] POST /f?a=1 HTTP/1.1", "method", "POST"),
        ('%h %t "%r" %<s %B', 'h [10/Oct/2000:13:55:36 -0700] "GET /x HTTP/1.1" 404 12', "status", 404),
        ('%h %t "%r" %>s %B', 'h [10/Oct/2000:13:55:36 -0700] "GET /x HTTP/1.1" 200 12', "size", 12),
        ('%h %t "%r" %s %O', 'h [10/Oct/2000:13:55:36 -0700] "GET /x HTTP/1.1" 200 99', "size", 99),
        ('%h %t "%r" %s %b %D %T %k %X %P %p %v %V %A %f %L %I %S %R %H %u %l',
         'h [10/Oct/2000:13:55:36 -0700] "GET /x HTTP/1.1" 200 5 123 0 1 + 42 80 vh vh2 10.0.0.1 /f - 1 2 h HTTP/1.1 u -',
         "size", 5),
        ('%h %t "%r" %s %b "%{Referer}i" "%{User-Agent}i" "%{Cookie}C" %{X-Forwarded-For}i %{pid}P %{tid}P',
         'h [10/Oct/2000:13:55:36 -0700] "GET /x HTTP/1.1" 200 5 "https://r/" "UA 1" "a=b" 1.2.3.4, 5.6.7.8 12 34',
         "referrer", "https://r/"),
        ('%h %400,501{User-agent}i %t "%r"', 'h - [10/Oct/2000:13:55:36 -0700] "GET /x HTTP/1.1"', "agent", None),
        ('%h %!200{Referer}i %t "%r"', 'h http://a/ [10/Oct/2000:13:55:36 -0700] "GET /x HTTP/1.1"', "referrer",
         "http://a/"),
        ('%h %t "%r" %>s %b %{Host}i %{Content-Type}o %{SSL_PROTOCOL}e %{note}n %{c}a %{remote}p %{X}^ti %{Y}^to',
         'h [10/Oct/2000:13:55:36 -0700] "GET /x HTTP/1.1" 200 5 a.org text/html TLSv1.3 n 10.0.0.2 5555 x y',
         "status", 200),
        ('%h %t "%r" %>s %b %%', 'h [10/Oct/2000:13:55:36 -0700] "GET /x HTTP/1.1" 200 5 %', "size", 5),
    ],
)
def test_every_directive_that_carries_a_field(fmt: str, line: str, field: str, value: object) -> None:
    request = make_log_format_parser(fmt)(line)
    assert request is not None, compile_log_format(fmt).regex.pattern
    got = getattr(request, field)
    assert got == pytest.approx(value) if isinstance(value, float) else got == value


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ('%h %t "%r" %Z', "unknown LogFormat directive %Z"),
        ('%h "%r" %>s', "no time directive"),
        ("%h %t %>s", "no request directive"),
        ("$remote_addr [$time_local] $status", "no request directive"),
    ],
)
def test_bad_log_formats_are_named(fmt: str, message: str) -> None:
    with pytest.raises(TraceFormatError, match=message):
        compile_log_format(fmt)


def test_presets_compile_and_round_trip() -> None:
    for name in PRESETS:
        compiled = compile_log_format(name)
        assert {"time", "request"} <= compiled.fields and compiled.fast is not None


def test_odd_request_lines_fall_back_to_the_general_regex() -> None:
    parse = make_log_format_parser("combined")
    old = '1.1.1.1 - - [10/Oct/2000:13:55:36 -0700] "GET /ksc.html" 200 5 "-" "-"'  # HTTP/0.9, no protocol
    request = parse(old)
    assert request is not None and request.path == "/ksc.html" and request.agent is None
    spaced = '1.1.1.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a b.html HTTP/1.0" 200 5 "-" "-"'
    assert parse(spaced) is not None and parse(spaced).path == "/a b.html"  # type: ignore[union-attr]
    assert parse('1.1.1.1 - - [10/Oct/2000:13:55:36 -0700] "\\x16\\x03\\x01" 400 5 "-" "-"') is None


# --- JSON lines -----------------------------------------------------------------------------------------

NGINX_JSON = (
    '{"time_local":"22/Mar/2024:10:15:32 +0000","remote_addr":"192.0.2.1","remote_user":"","request":'
    '"GET /api/v1/items?page=2 HTTP/1.1","status": "200","body_bytes_sent":"512","request_time":"0.004",'
    '"http_referrer":"https://example.com/","http_user_agent":"Mozilla/5.0 \\"quoted\\""}'
)
CADDY_JSON = (
    '{"level":"info","ts":1646861401.5241024,"logger":"http.log.access","msg":"handled request","request":'
    '{"remote_ip":"127.0.0.1","remote_port":"41342","client_ip":"127.0.0.1","proto":"HTTP/2.0","method":"GET",'
    '"host":"localhost","uri":"/docs/","headers":{"User-Agent":["curl/7.82.0"],"Accept":["*/*"]}},'
    '"bytes_read":0,"user_id":"","duration":0.000929675,"size":10900,"status":200,"resp_headers":'
    '{"Server":["Caddy"],"Content-Type":["text/html"]}}'
)
ENVOY_JSON = (
    '{"start_time":"2024-03-22T10:15:32.123Z","method":"POST","path":"/cart?id=3","protocol":"HTTP/1.1",'
    '"response_code":201,"bytes_sent":77,"user_agent":"okhttp/4.9","downstream_remote_address":"10.0.0.7:51234"}'
)
TRAEFIK_JSON = (
    '{"ClientAddr":"10.0.0.8:40000","ClientHost":"10.0.0.8","DownstreamContentSize":1024,"DownstreamStatus":200,'
    '"RequestMethod":"GET","RequestPath":"/dashboard/","RequestProtocol":"HTTP/1.1",'
    '"StartUTC":"2024-03-22T10:15:32.123456789Z","request_User-Agent":"Mozilla/5.0","request_Referer":"https://a/"}'
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (NGINX_JSON, ("192.0.2.1", "GET", "/api/v1/items?page=2", 200, 512, "https://example.com/",
                      'Mozilla/5.0 "quoted"', 1711102532.0)),
        (CADDY_JSON, ("127.0.0.1", "GET", "/docs/", 200, 10900, None, "curl/7.82.0", 1646861401.5241024)),
        (ENVOY_JSON, ("10.0.0.7", "POST", "/cart?id=3", 201, 77, None, "okhttp/4.9", 1711102532.123)),
        (TRAEFIK_JSON, ("10.0.0.8", "GET", "/dashboard/", 200, 1024, "https://a/", "Mozilla/5.0", 1711102532.123456)),
    ],
    ids=["nginx-escape-json", "caddy", "envoy", "traefik"],
)
def test_json_lines_defaults(tmp_path: Path, line: str, expected: tuple[object, ...]) -> None:
    path = _write(tmp_path, "access.json", (line + "\n") * 3)
    assert detect_format(path) == "json"
    request = next(iter(read_requests(path)))
    got = (request.client, request.method, request.path, request.status, request.size, request.referrer,
           request.agent)
    assert got == expected[:-1]
    assert request.time == pytest.approx(expected[-1])


def test_json_fields_override_by_dotted_path(tmp_path: Path) -> None:
    line = '{"meta":{"when":1711102532},"req":{"who":"10.9.9.9","url":"/x.html"},"code":200}'
    path = _write(tmp_path, "custom.json", (line + "\n") * 2)
    with pytest.raises(TraceFormatError):
        list(read_requests(path, format="json"))  # no default name fits: loud, not silent
    from precache.traces.options import ReadOptions

    options = ReadOptions(format="json", json_fields={"time": "meta.when", "client": "req.who", "path": "req.url",
                                                      "status": "code"})
    request = next(iter(read_requests(path, options=options)))
    assert (request.client, request.path, request.status, request.time) == ("10.9.9.9", "/x.html", 200, 1711102532)


# --- W3C extended ---------------------------------------------------------------------------------------

IIS = """#Software: Microsoft Internet Information Services 10.0
#Version: 1.0
#Date: 2024-03-22 10:00:00
#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken
2024-03-22 10:00:01 192.0.2.10 GET /default.htm - 80 - 203.0.113.5 Mozilla/5.0+(Windows+NT+10.0) - 200 0 0 15
2024-03-22 10:00:07 192.0.2.10 GET /search.aspx q=cache 80 - 203.0.113.5 Mozilla/5.0+(Windows+NT+10.0) http://192.0.2.10/default.htm 200 0 0 31
#Software: Microsoft Internet Information Services 10.0
#Version: 1.0
#Date: 2024-03-22 10:05:00
#Fields: date time c-ip cs-method cs-uri-stem sc-status sc-bytes
2024-03-22 10:05:00 203.0.113.6 HEAD /about.htm 200 1234
"""

CLOUDFRONT = (
    "#Version: 1.0\n"
    "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) "
    "cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol "
    "cs-bytes time-taken\n"
    "2019-12-04\t21:02:31\tLAX1\t392\t192.0.2.100\tGET\td111111abcdef8.cloudfront.net\t/index.html\t200\t-\t"
    "Mozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)\t-\t-\tHit\tSOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBN"
    "rjGdRLiNIQ==\td111111abcdef8.cloudfront.net\thttps\t23\t0.001\n"
)


def test_iis_w3c_with_a_fields_change_mid_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "u_ex240322.log", IIS)
    assert detect_format(path) == "w3c"
    reader = read_requests(path)
    requests = list(reader)
    assert reader.report.malformed == 0
    assert [(r.client, r.method, r.path, r.status, r.size) for r in requests] == [
        ("203.0.113.5", "GET", "/default.htm", 200, 0),
        ("203.0.113.5", "GET", "/search.aspx?q=cache", 200, 0),
        ("203.0.113.6", "HEAD", "/about.htm", 200, 1234),
    ]
    assert requests[0].agent == "Mozilla/5.0 (Windows NT 10.0)"
    assert requests[1].referrer == "http://192.0.2.10/default.htm"
    assert requests[2].time == calendar.timegm((2024, 3, 22, 10, 5, 0, 0, 0, 0))


def test_cloudfront_w3c(tmp_path: Path) -> None:
    path = _write(tmp_path, "E2.2019-12-04-21.d3f2", CLOUDFRONT)
    (request,) = list(read_requests(path))
    assert (request.client, request.path, request.size, request.status) == ("192.0.2.100", "/index.html", 392, 200)
    assert request.agent == "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
    assert request.time == calendar.timegm((2019, 12, 4, 21, 2, 31, 0, 0, 0))


# --- ITA [DD:HH:MM:SS] and --pattern ---------------------------------------------------------------------

EPA = """141.243.1.172 [29:23:53:25] "GET /Software.html HTTP/1.0" 200 1497
query2.lycos.cs.cmu.edu [29:23:53:36] "GET /Consumer.html HTTP/1.0" 200 1325
tanuki.twics.com [30:00:00:01] "GET /News.html HTTP/1.0" 200 -
wpbfl2-45.gate.net [31:23:59:59] "GET / HTTP/1.0" 304 0
host2 [01:00:00:05] "GET /next-month.html HTTP/1.0" 200 10
"""


def test_ita_with_base_date_rolls_over_to_the_next_month(tmp_path: Path) -> None:
    path = _write(tmp_path, "epa-http.txt", EPA)
    assert detect_format(path) == "ita"
    requests = list(read_requests(path, base_date="1995-08-29"))
    assert requests[0].time == calendar.timegm((1995, 8, 29, 23, 53, 25, 0, 0, 0))
    assert requests[2].size == 0 and requests[3].status == 304
    assert requests[4].time == calendar.timegm((1995, 9, 1, 0, 0, 5, 0, 0, 0))
    reader = read_requests(path)
    assert len(list(reader)) == 5 and any("--base-date" in note for note in reader.report.notes)


SDSC = """3+1: Tue Aug 22 00:00:09 1995 (/wow/mexico/cancun/cancan.html): Sent text: GET /wow/mexico/cancun/cancan.html HTTP/1.0
3+1: Tue Aug 22 00:00:10 1995 (/wow/nothing.html): Error: file not found
4+2: Tue Aug 22 00:00:12 1995 (/wow/index.html): Sent text: GET /wow/index.html HTTP/1.0
3+1: Tue Aug 22 00:00:15 1995 (/wow/mexico/map.gif): Sent image: GET /wow/mexico/map.gif HTTP/1.0
"""
SDSC_PATTERN = (r"^(?P<session>\S+): (?P<time>\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4}) \(.*?\): "
                r"Sent \w+: (?P<request>.+)$")


def test_pattern_reads_the_sdsc_style_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "sdsc.log", SDSC)
    with pytest.raises(TraceFormatError, match="unknown trace format"):
        detect_format(path)
    reader = read_requests(path, pattern=SDSC_PATTERN, time_format="ctime")
    requests = list(reader)
    assert [(r.client, r.path) for r in requests] == [
        ("3+1", "/wow/mexico/cancun/cancan.html"), ("4+2", "/wow/index.html"), ("3+1", "/wow/mexico/map.gif")]
    assert requests[0].time == calendar.timegm((1995, 8, 22, 0, 0, 9, 0, 0, 0))
    assert reader.report.malformed == 1 and reader.report.malformed_line_numbers == [2]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [(r"(?P<host>\S+) (?P<time>\S+)", "no \\(\\?P<path>"), (r"(?P<path>\S+) (?P<hots>\S+)", "unknown group"),
     (r"(?P<path>[", "not a valid regular expression")],
)
def test_bad_patterns_are_named(tmp_path: Path, pattern: str, message: str) -> None:
    path = _write(tmp_path, "x.log", "a b\n")
    with pytest.raises(TraceFormatError, match=message):
        read_requests(path, pattern=pattern)


def test_unknown_time_format_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.log", "a b\n")
    with pytest.raises(TraceFormatError, match="unknown --time-format 'fortnights'"):
        read_requests(path, pattern=r"(?P<path>\S+)", time_format="fortnights")


SYSLOG_NGINX = """<190>Mar 22 10:15:32 web1 nginx: 192.0.2.1 - - [22/Mar/2024:10:15:32 +0000] "GET /a.html HTTP/1.1" 200 615 "-" "curl/8.0"
<190>Mar 22 10:15:33 web1 nginx[812]: 192.0.2.2 - - [22/Mar/2024:10:15:33 +0000] "GET /b.html HTTP/1.1" 200 615 "-" "curl/8.0"
2024-03-22T10:15:34.120+00:00 web1 nginx: 192.0.2.1 - - [22/Mar/2024:10:15:34 +0000] "GET /c.html HTTP/1.1" 304 0 "-" "curl/8.0"
"""


def test_syslog_wrapped_nginx_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "syslog", SYSLOG_NGINX)
    assert detect_format(path) == "syslog+clf"
    requests = list(read_requests(path))
    assert [(r.client, r.path, r.status) for r in requests] == [
        ("192.0.2.1", "/a.html", 200), ("192.0.2.2", "/b.html", 200), ("192.0.2.1", "/c.html", 304)]
    reader = read_requests(path, format="syslog+nginx")
    assert [r.agent for r in reader] == ["curl/8.0"] * 3 and reader.report.format == "syslog+logformat 'nginx'"
    assert len(list(read_requests(path, format="syslog", log_format="combined"))) == 3
    with pytest.raises(TraceFormatError, match="inner format"):
        read_requests(path, format="syslog")


ALB_LINES = """http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2018-07-02T22:22:48.364000Z "forward" "-" "-" "10.0.0.1:80" "200" "-" "-"
https 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.086 0.048 0.037 200 200 0 57 "GET https://www.example.com:443/about.html HTTP/1.1" "Mozilla/5.0 (X11)" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337281-1d84f3d73c47ec4e58577259" "www.example.com" "arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012" 1 2018-07-02T22:22:48.364000Z "authenticate,forward" "-" "-" "10.0.0.1:80" "200" "-" "-"
"""


def test_aws_alb_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "alb.log", ALB_LINES)
    assert detect_format(path) == "alb"
    first, second = list(read_requests(path))
    assert (first.client, first.path, first.status, first.size, first.agent) == (
        "192.168.131.39", "http://www.example.com:80/", 200, 366, "curl/7.46.0")
    assert second.path == "https://www.example.com:443/about.html" and second.agent == "Mozilla/5.0 (X11)"
    assert first.time == pytest.approx(calendar.timegm((2018, 7, 2, 22, 23, 0, 0, 0, 0)) + 0.186641)
